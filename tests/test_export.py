"""Export: a trained model as a jax.export artifact that a process without jaxrnn
loads and runs (any batch size), and the ONNX route (to_torch + torch.onnx) of a
bidirectional LSTM run by onnxruntime, both against jaxrnn's outputs."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxrnn
from jaxrnn.export import export_model, load_model
from jaxrnn.models import apply_batch, make_layer, objective, sequence_model
from jaxrnn.train import fit

F64 = jnp.float64

# Loads and runs the artifact with jax alone: importing jaxrnn is made impossible.
LOADER = textwrap.dedent(
    """
    import sys
    sys.modules["jaxrnn"] = None
    import jax
    import numpy as np
    jax.config.update("jax_enable_x64", True)
    with open("model.jaxexport", "rb") as f:
        exported = jax.export.deserialize(bytearray(f.read()))
    y = exported.call(np.load("x.npy"))
    np.save("y.npy", np.asarray(y))
    assert not any(m.startswith("jaxrnn") and sys.modules[m] for m in sys.modules)
    """
)


def test_trained_model_exports_and_runs_without_jaxrnn(tmp_path):
    model = sequence_model(make_layer("lstm", 3, 6, bidirectional=True, dtype=F64), 2, dtype=F64)
    loss_fn, _ = objective(model, "regress", dtype=F64)
    rng = np.random.default_rng(0)
    data = {"x": rng.normal(size=(16, 5, 3)), "y": rng.normal(size=(16, 2))}
    params0 = model.init(jax.random.key(0))
    res = fit(
        loss_fn,
        params0,
        data,
        steps=5,
        key=jax.random.key(1),
        optimizer=optax.adam(1e-2),
        batch_size=4,
        progress=False,
    )
    apply = lambda p, x: apply_batch(model, p, x)  # noqa: E731
    export_model(apply, res.params, data["x"][:4], path=tmp_path / "model.jaxexport")
    x = rng.normal(size=(7, 5, 3))  # another batch size than the example's
    np.save(tmp_path / "x.npy", x)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-c", LOADER],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    want = apply(res.params, jnp.asarray(x))
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), want, rtol=1e-12, atol=1e-12)
    # The trained params, not the initial ones, are inside.
    assert not np.allclose(want, apply(params0, jnp.asarray(x)))


def test_nn_layer_exports_with_its_tuple_of_outputs():
    lstm = jaxrnn.nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True, dtype=F64)
    params = lstm.init(jax.random.key(2))
    blob = export_model(lstm.apply, params, jax.ShapeDtypeStruct((2, 5, 3), F64))
    x = jax.random.normal(jax.random.key(3), (3, 5, 3), F64)
    got, want = load_model(blob)(x), lstm.apply(params, x)
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="example input"):
        export_model(lstm.apply, params)


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")  # torch's exporter
def test_onnx_route_runs_a_bidirectional_lstm_in_onnxruntime(tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="the ONNX test needs onnxruntime")
    pytest.importorskip("onnxscript", reason="torch.onnx.export(dynamo=True) needs onnxscript")
    import torch

    lstm = jaxrnn.nn.LSTM(3, 5, num_layers=2, bidirectional=True, batch_first=True)
    params = lstm.init(jax.random.key(4))  # float32: onnxruntime's LSTM has no float64
    module = jaxrnn.to_torch(lstm, params).eval()
    example = torch.zeros(2, 6, 3)
    path = tmp_path / "lstm.onnx"
    torch.onnx.export(
        module,
        (example,),
        str(path),
        dynamo=True,
        input_names=["x"],
        output_names=["output", "h_n", "c_n"],
        dynamic_shapes=({0: torch.export.Dim("batch")},),
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(5).normal(size=(4, 6, 3)).astype(np.float32)
    got = session.run(None, {"x": x})
    out, (h_n, c_n) = lstm.apply(params, jnp.asarray(x))
    for a, b in zip(got, (out, h_n, c_n), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
