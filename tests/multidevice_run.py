"""The data-parallel training problem of ``tests/test_data_parallel.py``.

Run as a script under ``XLA_FLAGS=--xla_force_host_platform_device_count=4`` it trains
the same model on a one-device mesh and on the four-device mesh, writes a checkpoint
of the four-device run at step 3, and saves what the test compares to
``<out>/results.npz``. Imported, it gives the problem so the test's own (one-device)
process can resume that checkpoint.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

F64 = jnp.float64
STEPS, SPLIT, BATCH = 6, 3, 16


def problem(seen: list | None = None):
    """``(loss_fn, params0, fit_kwargs)``; ``seen`` collects the batch's sharding as
    the compiled step sees it."""
    from jaxrnn import lstm
    from jaxrnn.models import objective, sequence_model

    model = sequence_model(lstm(3, 8, dtype=F64), 2, dtype=F64)
    loss_fn, metric_fn = objective(model, "regress", dtype=F64)
    rng = np.random.default_rng(0)
    data = {"x": rng.normal(size=(64, 6, 3)), "y": rng.normal(size=(64, 2))}

    def traced_loss(params, batch, key):
        if seen is not None:
            jax.debug.inspect_array_sharding(batch["x"], callback=seen.append)
        return loss_fn(params, batch, key)

    kw = dict(
        steps=STEPS,
        key=jax.random.key(0),
        optimizer=optax.adam(1e-2),
        batch_size=BATCH,
        eval_fn=lambda p: {"full_loss": metric_fn(p, data)["loss"]},
        eval_every=1,
        progress=False,
    )
    return traced_loss, model.init(jax.random.key(1)), data, kw


def _leaves(tree):
    return [np.asarray(a) for a in jax.tree_util.tree_leaves(tree)]


def main(out: Path) -> None:
    jax.config.update("jax_enable_x64", True)
    from jaxrnn.data_parallel import batch_mesh
    from jaxrnn.train import fit

    assert jax.device_count() == 4, jax.devices()
    seen: list = []
    loss_fn, params0, data, kw = problem(seen)
    one = fit(loss_fn, params0, data, mesh=batch_mesh(jax.devices()[:1]), **kw)
    ck = out / "ck.msgpack"
    fit(loss_fn, params0, data, checkpoint_path=ck, **{**kw, "steps": SPLIT})
    shutil.copy(ck, out / "ck_step3.msgpack")
    four = fit(loss_fn, params0, data, checkpoint_path=ck, resume=True, **kw)
    sharding = four.params[1].w.sharding
    np.savez(
        out / "results.npz",
        one_losses=[r["full_loss"] for r in one.history],
        four_losses=[r["full_loss"] for r in four.history],
        one_train=[r["train_loss"] for r in one.history],
        four_train=[r["train_loss"] for r in four.history],
        shard_rows=[s.shard_shape((BATCH, 6, 3))[0] for s in seen],
        batch_devices=[len(s.device_set) for s in seen],
        param_devices=len(sharding.device_set),
        param_replicated=sharding.is_fully_replicated,
        **{f"one_{i}": a for i, a in enumerate(_leaves(one.params))},
        **{f"four_{i}": a for i, a in enumerate(_leaves(four.params))},
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
