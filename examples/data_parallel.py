"""Data-parallel training with ``fit``: the same call on one device and on many.

Trains a GRU on the adding problem (T = 50) twice, on a one-device mesh and on a mesh
over every device, and prints both loss curves and the largest parameter difference.
On a CPU, ask XLA for several host devices (the flag must be set before JAX starts):

    XLA_FLAGS=--xla_force_host_platform_device_count=4 python examples/data_parallel.py

On a machine with several GPUs run it as it is; on several hosts, call
``jax.distributed.initialize()`` first (see ``jaxrnn.data_parallel``).
"""

import time

import jax
import numpy as np
import optax

import jaxrnn
from jaxrnn.data_parallel import batch_mesh
from jaxrnn.models import objective, sequence_model
from jaxrnn.tasks import adding
from jaxrnn.train import fit

data = adding(50, num_train=4096, num_test=512)
model = sequence_model(jaxrnn.gru(2, 64), 1)
loss_fn, metric_fn = objective(model, "regress")
params = model.init(jax.random.key(0))
n = jax.device_count()


def run(mesh):
    t0 = time.perf_counter()
    result = fit(
        loss_fn,
        params,
        data.train,
        steps=400,
        batch_size=64,  # a multiple of the number of devices
        key=jax.random.key(1),
        optimizer=optax.adam(3e-3),
        eval_fn=lambda p: metric_fn(p, data.test),
        eval_every=100,
        mesh=mesh,
        progress=False,
    )
    return result, time.perf_counter() - t0


one, t_one = run(batch_mesh(jax.devices()[:1]))
many, t_many = run(batch_mesh())  # the default: every device
for a, b in zip(one.history, many.history):
    print(f"step {a['step']:4d}  test MSE  1 device {a['loss']:.6f}   {n} devices {b['loss']:.6f}")
diff = max(
    float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
    for a, b in zip(jax.tree_util.tree_leaves(one.params), jax.tree_util.tree_leaves(many.params))
)
print(f"largest parameter difference after 400 steps: {diff:.2e}")
w = many.params[1].w
print(f"params: {w.sharding.spec} (replicated) on {len(w.devices())} devices")
print(f"wall time: 1 device {t_one:.1f} s, {n} devices {t_many:.1f} s")
