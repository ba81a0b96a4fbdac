"""The command line: bad input gives one line and exit 2; a tiny train run writes its
outputs and ``evaluate`` reproduces its numbers; ``compare`` runs BPTT and TBPTT; the
paper's MNIST-1D GRU preset is the published configuration."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from jaxrnn import cli, runs
from jaxrnn.checkpoint import save_checkpoint


def _run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "argv, words",
    [
        (["train", "--task", "nope"], "nope"),
        (["train", "--cell", "transformer"], "transformer"),
        (["train", "--steps", "-5"], "-5"),
        (["train", "--lr", "abc"], "abc"),
        (["train", "--hidden", "0"], "0"),
        (["train", "--task", "fashion_mnist", "--data-dir", "/nonexistent/fmnist"], "nonexistent"),
        (["train", "--task", "mnist_idx"], "--data-dir"),
        (["train", "--task", "digits", "--readout", "all"], "readout"),
        (["train", "--preset", "paper-gru", "--task", "digits"], "preset"),
        (["train", "--task", "digits", "--method", "magic"], "magic"),
        (["evaluate", "/nonexistent/run"], "does not exist"),
        (["compare", "--methods", "bptt,nonsense"], "nonsense"),
        (["compare", "--seeds", "a,b"], "seeds"),
        (["compare", "--preset", "zucchet-copy", "--methods", "rflo"], "zucchet-copy"),
        (["compare", "--preset", "zucchet-copy", "--seeds", "-1"], "seeds"),
        (["frobnicate"], "frobnicate"),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys, argv, words):
    code, out, err = _run(capsys, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jaxrnn: error: "), err
    assert words in lines[0]
    assert "Traceback" not in err + out


def test_module_entry_point_reports_errors_without_traceback(tmp_path):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    p = subprocess.run(
        [sys.executable, "-m", "jaxrnn", "train", "--steps", "-1"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert p.returncode == 2
    assert p.stderr.strip().startswith("jaxrnn: error:") and "Traceback" not in p.stderr


def test_train_writes_outputs_and_evaluate_reproduces_them(capsys, tmp_path):
    out_dir = tmp_path / "run"
    code, out, _ = _run(
        capsys, "train", "--task", "next_letter", "--steps", "200", "--eval-every", "50",
        "--out", str(out_dir), "--no-progress",
    )  # fmt: skip
    assert code == 0
    assert "c.next= d" in out and "fg.next= h" in out
    history = json.loads((out_dir / "metrics.json").read_text())
    assert [h["step"] for h in history] == [50, 100, 150, 200]
    with open(out_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert float(rows[-1]["test_accuracy"]) == history[-1]["test_accuracy"]
    assert (out_dir / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    final = json.loads((out_dir / "config.json").read_text())["final"]
    assert final["test_accuracy"] == 1.0

    code, out, _ = _run(capsys, "evaluate", str(out_dir))
    assert code == 0 and "step 200" in out
    assert f"'test_accuracy': {round(final['test_accuracy'], 4)}" in out
    assert f"'test_loss': {round(final['test_loss'], 4)}" in out

    # A damaged checkpoint is a one-line error.
    ck = out_dir / "checkpoint.msgpack"
    ck.write_bytes(ck.read_bytes()[:-100])
    code, _, err = _run(capsys, "evaluate", str(out_dir))
    assert code == 2 and "truncated" in err and len(err.strip().splitlines()) == 1
    save_checkpoint(ck, {"unrelated": 1})
    code, _, err = _run(capsys, "evaluate", str(ck))
    assert code == 2 and "does not fit" in err


def test_compare_bptt_and_full_window_tbptt_agree(capsys, tmp_path):
    code, out, _ = _run(
        capsys, "compare", "--methods", "bptt,tbptt", "--updates", "6", "--chunk", "10",
        "--tbptt-k", "10", "--hidden", "4", "--out", str(tmp_path), "--no-progress",
    )  # fmt: skip
    assert code == 0, out
    rows = {r["method"]: r for r in json.loads((tmp_path / "compare.json").read_text())["rows"]}
    assert rows["bptt"]["cosine_to_bptt"] == pytest.approx(1.0, abs=1e-6)
    # TBPTT with k = chunk is exactly BPTT, so the whole run is identical.
    assert rows["tbptt"]["cosine_to_bptt"] == pytest.approx(1.0, abs=1e-6)
    assert rows["tbptt"]["final_loss"] == pytest.approx(rows["bptt"]["final_loss"], rel=1e-6)
    assert (tmp_path / "compare.png").exists()
    assert "final CE" in out and "cos(BPTT)" in out


def test_zucchet_copy_preset_exact_online_is_bptt_and_spatial_drops_the_eigenvalues(
    capsys, tmp_path
):
    """The preset's exact online rule (diagonal RTRL of the LRU, units of 2) gives BPTT's
    gradient (cosine 1); spatial backpropagation does not."""
    code, out, err = _run(
        capsys, "compare", "--preset", "zucchet-copy", "--methods", "online,spatial",
        "--updates", "3", "--hidden", "3", "--seeds", "0", "--out", str(tmp_path),
        "--no-progress",
    )  # fmt: skip
    assert code == 0, err
    result = json.loads((tmp_path / "compare.json").read_text())
    rows = {r["method"]: r for r in result["rows"]}
    assert rows["online"]["cosine_to_bptt"] == pytest.approx(1.0, abs=1e-5)
    assert rows["spatial"]["cosine_to_bptt"] < 0.99
    assert (tmp_path / "compare.png").exists() and "ranking" in out


def test_paper_gru_preset_is_the_published_configuration():
    args = cli.build_parser().parse_args(["train", "--preset", "paper-gru"])
    cfg = cli._config(args)
    want = dict(task="mnist1d", cell="gru", hidden=6, bidirectional=True, readout="flatten",
                optimizer="adam", lr=1e-2, batch_size=100, steps=6000)  # fmt: skip
    assert {k: cfg[k] for k in want} == want
    meta = {"kind": "classify", "input_size": 1, "output_size": 10, "seq_len": 40, "name": "m"}
    model, _, _ = runs.build_model(cfg, meta)
    import jax

    n = sum(x.size for x in jax.tree_util.tree_leaves(model.init(jax.random.key(0))))
    # The same model in PyTorch: bidirectional GRU(1, 6) + Linear(40 * 12, 10).
    ref = torch.nn.GRU(1, 6, bidirectional=True, batch_first=True)
    head = torch.nn.Linear(40 * 12, 10)
    assert n == sum(p.numel() for m in (ref, head) for p in m.parameters())


def test_default_train_is_gru_on_mnist1d():
    cfg = cli._config(cli.build_parser().parse_args(["train"]))
    assert (cfg["task"], cfg["cell"], cfg["hidden"], cfg["method"]) == (
        "mnist1d",
        "gru",
        32,
        "bptt",
    )
    assert Path(cli.__file__).name == "cli.py"


@pytest.mark.parametrize("kind", ["classify", "regress"])
def test_train_method_targets_give_the_bptt_gradient_of_the_training_loss(kind):
    import jax
    import numpy as np

    cfg = cli._config(cli.build_parser().parse_args(["train", "--task", "digits"]))
    from jaxrnn.train import gradient_methods

    # Exact methods only: RTRL when jaxrnn.grad provides it, else TBPTT with k >= T.
    method = "rtrl" if "rtrl" in gradient_methods() else "tbptt"
    cfg.update(cell="gru", hidden=5, method=method, tbptt_k=6)
    O = 3 if kind == "classify" else 2
    meta = {"kind": kind, "input_size": 4, "output_size": O, "seq_len": 6, "name": "t"}
    model, loss_fn, _ = runs.build_model(cfg, meta)
    rng = np.random.default_rng(0)
    batch = {"x": rng.normal(size=(5, 6, 4)).astype(np.float32)}
    if kind == "classify":
        batch["y"] = rng.integers(0, O, 5).astype(np.int32)
    else:
        batch["y"] = rng.normal(size=(5, O)).astype(np.float32)
    params = model.init(jax.random.key(0))
    grad_fn = runs.build_grad_fn(cfg, model, meta)
    loss, _, grads = grad_fn(params, batch, jax.random.key(1))
    want_loss, want = jax.value_and_grad(lambda p: loss_fn(p, batch, None)[0])(params)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
    for a, b in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(want)):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6)


def test_traceback_on_request(monkeypatch):
    monkeypatch.setenv("JAXRNN_TRACEBACK", "1")
    with pytest.raises(cli.CLIError, match="steps"):
        cli.main(["train", "--steps", "-1"])
