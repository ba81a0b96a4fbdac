"""BPTT against RTRL (and truncated BPTT) on the add task with lags 3 and 8.

Stream: x_t ~ Bernoulli(0.5), P(y_t = 1) = 0.5 + 0.5 x_{t-3} - 0.25 x_{t-8}. An Elman
RNN with a softmax readout is trained on consecutive chunks of the stream (one update
per chunk, parameters frozen within a chunk: the "per-sequence" protocol), once with
each gradient method, by :func:`jaxrnn.train.compare_methods` (the loop behind
``jaxrnn compare``). Exact RTRL computes the same gradient as BPTT, forward in time;
TBPTT(k) with k < 8 cannot see the second lag. The cross-entropy floors are 0.661 (no
memory), 0.520 (only lag 3) and 0.454 (both lags).

    python examples/bptt_vs_rtrl_add_task.py [--updates 2000]
"""

import argparse

import jax
import optax

import jaxrnn
from jaxrnn.models import linear
from jaxrnn.tasks import ADD_TASK_FLOORS, add_task_stream
from jaxrnn.train import compare_methods

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--updates", type=int, default=2000, help="chunks of 50 steps (default 2000)")
UPDATES = ap.parse_args().updates
H, CHUNK, K = 16, 50, 5
cell = jaxrnn.rnn(1, H)
head_init, head = linear(H, 2)


def step_loss(head_params, y, target):  # soft-target cross-entropy of one step
    return optax.softmax_cross_entropy(head(head_params, y), target)


x, y = add_task_stream(CHUNK * UPDATES, seed=0)
rows, _ = compare_methods(
    cell,
    step_loss,
    lambda seed: (cell.init(jax.random.key(0)), head_init(jax.random.key(1))),
    {0: (x.reshape(UPDATES, CHUNK, 1), y.reshape(UPDATES, CHUNK, 2))},
    ["bptt", "tbptt", "rtrl"],  # every jaxrnn.grad method is called the same way
    optimizer=optax.chain(optax.clip_by_global_norm(1.0), optax.adam(3e-3)),
    options={"k": K},  # TBPTT's window (the other methods take no k)
)
print(f"{'method':<10} {'final CE':>9} {'cos to BPTT':>12} {'seconds':>8}")
for r in rows:
    name = r["method"] + (str(K) if r["method"] == "tbptt" else "")
    seconds = r["ms_per_step"] * CHUNK * UPDATES / 1e3
    print(f"{name:<10} {r['final_loss']:>9.3f} {r['cosine_to_bptt']:>12.4f} {seconds:>8.1f}")
print("floors:", ADD_TASK_FLOORS)
