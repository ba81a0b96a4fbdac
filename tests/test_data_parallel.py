"""Data parallelism: ``fit`` on a 4-device mesh (CPU devices forced by XLA_FLAGS in a
subprocess) equals the 1-device run, the batch is really split, and a checkpoint of
the 4-device run resumes here on one device on the same trajectory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jax
import multidevice_run as md
import numpy as np
import pytest

from jaxrnn.data_parallel import batch_mesh, replicate, shard_batch
from jaxrnn.train import fit

TOL = dict(rtol=1e-10, atol=1e-12)


@pytest.fixture(scope="module")
def four_device_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("md")
    root = Path(__file__).resolve().parents[1]
    env = {
        **os.environ,
        # the suite's flags (conftest.py) plus four host devices
        "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=4",
        "JAX_PLATFORMS": "cpu",
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, str(root / "tests" / "multidevice_run.py"), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out, dict(np.load(out / "results.npz"))


def test_four_devices_equal_one_device(four_device_run):
    _, r = four_device_run
    assert len(r["one_losses"]) == md.STEPS
    np.testing.assert_allclose(r["four_losses"], r["one_losses"], **TOL)
    np.testing.assert_allclose(r["four_train"], r["one_train"], rtol=1e-6)
    n = sum(k.startswith("one_") and k[4:].isdigit() for k in r)
    assert n == 6  # LSTM w_ih, w_hh, b_ih, b_hh and the head's w, b
    for i in range(n):
        np.testing.assert_allclose(r[f"four_{i}"], r[f"one_{i}"], **TOL)
    # The run moved: the losses are not those of the initial params.
    assert r["one_losses"][-1] < r["one_losses"][0]


def test_batch_is_split_over_four_devices(four_device_run):
    _, r = four_device_run
    # Compiled steps: the 1-device mesh (16 rows on 1 device), then the 4-device mesh
    # (4 rows on each of 4 devices).
    assert (md.BATCH, 1) in set(zip(r["shard_rows"].tolist(), r["batch_devices"].tolist()))
    assert (md.BATCH // 4, 4) in set(zip(r["shard_rows"].tolist(), r["batch_devices"].tolist()))
    assert int(r["param_devices"]) == 4 and bool(r["param_replicated"])


def test_four_device_checkpoint_resumes_on_one_device(four_device_run):
    out, r = four_device_run
    assert jax.device_count() == 1
    loss_fn, params0, data, kw = md.problem()
    ck = out / "resume_here.msgpack"
    ck.write_bytes((out / "ck_step3.msgpack").read_bytes())
    res = fit(loss_fn, params0, data, checkpoint_path=ck, resume=True, **kw)
    assert [h["step"] for h in res.history] == list(range(1, md.STEPS + 1))
    np.testing.assert_allclose([h["full_loss"] for h in res.history], r["four_losses"], **TOL)
    for i, a in enumerate(jax.tree_util.tree_leaves(res.params)):
        np.testing.assert_allclose(a, r[f"four_{i}"], **TOL)


def test_shard_batch_checks_divisibility_and_mesh():
    mesh = batch_mesh()
    batch = shard_batch({"x": np.ones((3, 2)), "n": 5}, mesh)
    assert batch["x"].sharding.spec == jax.sharding.PartitionSpec("batch")
    assert replicate(np.ones(2), mesh).sharding.is_fully_replicated
    with pytest.raises(ValueError, match="mesh must be a jax"):
        shard_batch({"x": np.ones((3, 2))}, "batch")
