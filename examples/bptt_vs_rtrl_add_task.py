"""BPTT against RTRL (and truncated BPTT) on the add task with lags 3 and 8.

Stream: x_t ~ Bernoulli(0.5), P(y_t = 1) = 0.5 + 0.5 x_{t-3} - 0.25 x_{t-8}. An Elman
RNN with a softmax readout is trained on consecutive chunks of the stream (one update
per chunk, parameters frozen within a chunk: the "per-sequence" protocol), once with
each gradient method. Exact RTRL computes the same gradient as BPTT, forward in time;
TBPTT(k) with k < 8 cannot see the second lag. The cross-entropy floors are 0.661 (no
memory), 0.520 (only lag 3) and 0.454 (both lags).

    python examples/bptt_vs_rtrl_add_task.py
"""

import time

import jax
import numpy as np
import optax

import jaxrnn
from jaxrnn.grad import cosine
from jaxrnn.models import linear
from jaxrnn.tasks import ADD_TASK_FLOORS, add_task_stream
from jaxrnn.train import gradient_methods

H, CHUNK, UPDATES = 16, 50, 2000
cell = jaxrnn.rnn(1, H)
head_init, head = linear(H, 2)


def step_loss(head_params, y, target):  # soft-target cross-entropy of one step
    return optax.softmax_cross_entropy(head(head_params, y), target)


x, y = add_task_stream(CHUNK * UPDATES, seed=0)
xs, ys = x.reshape(UPDATES, CHUNK, 1), y.reshape(UPDATES, CHUNK, 2)
methods = gradient_methods()  # every jaxrnn.grad method, called the same way
runs = {"bptt": {}, "tbptt": {"k": 5}, "rtrl": {}}
init = (cell.init(jax.random.key(0)), head_init(jax.random.key(1)))
bptt_grad = methods["bptt"](cell, step_loss)

print(f"{'method':<10} {'final CE':>9} {'cos to BPTT':>12} {'seconds':>8}")
for name, opts in runs.items():
    grad_fn = methods[name](cell, step_loss, **opts)
    cos = cosine(grad_fn(init, xs[0], ys[0])[1], bptt_grad(init, xs[0], ys[0])[1])
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(3e-3))

    @jax.jit
    def update(params, state, xc, yc, grad_fn=grad_fn, opt=opt):
        loss, grads = grad_fn(params, xc, yc)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    params, state, losses = init, opt.init(init), []
    t0 = time.perf_counter()
    for i in range(UPDATES):
        params, state, loss = update(params, state, xs[i], ys[i])
        losses.append(float(loss) / CHUNK)
    final = np.mean(losses[-UPDATES // 5 :])
    print(f"{name + str(opts.get('k', '')):<10} {final:>9.3f} {float(cos):>12.4f} "
          f"{time.perf_counter() - t0:>8.1f}")  # fmt: skip
print("floors:", ADD_TASK_FLOORS)
