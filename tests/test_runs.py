"""``jaxrnn.runs`` from Python: configurations are checked before anything runs, a tiny
run writes its files and ``evaluate_run`` recomputes its test metrics, which a NumPy
transcription of the Elman network gives too; broken runs raise errors naming the file."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from jaxrnn import runs
from jaxrnn.checkpoint import CheckpointError


def test_run_config_merges_defaults_preset_and_options():
    cfg = runs.run_config(preset="paper-gru", seed=3)
    want = {**runs.COMMON_DEFAULTS, **runs.PRESETS["paper-gru"], "seed": 3}
    assert {k: cfg[k] for k in want} == want
    assert (cfg["data_dir"], cfg["text"], cfg["preset"]) == (None, None, "paper-gru")
    cfg = runs.run_config("digits", hidden=7)
    assert cfg["task"] == "digits" and cfg["hidden"] == 7
    assert cfg["steps"] == runs.TASK_DEFAULTS["digits"]["steps"]
    assert runs.run_config()["task"] == "mnist1d"
    assert runs.run_config("char_lm", text=Path("a.txt"))["text"] == "a.txt"  # JSON-ready


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(task="nope"), "task must be one of"),
        (dict(preset="nope"), "preset must be one of"),
        (dict(task="digits", preset="paper-gru"), "preset paper-gru is for task mnist1d"),
        (dict(hidden=0), "hidden must be a positive integer"),
        (dict(steps=2.5), "steps must be a positive integer"),
        (dict(seed=-1), "seed must be a non-negative integer"),
        (dict(lr=math.nan), "lr must be a positive finite number"),
        (dict(clip=-1.0), "clip must be a non-negative finite number"),
        (dict(cell="transformer"), "cell must be one of"),
        (dict(method="magic"), "method must be one of"),
        (dict(readout="sideways"), "readout must be one of"),
        (dict(bidirectional="yes"), "bidirectional must be a bool"),
        (dict(text=3), "text must be a path"),
    ],
)
def test_run_config_rejects_bad_options_naming_them(kwargs, words):
    with pytest.raises(ValueError, match=words):
        runs.run_config(**kwargs)


def test_run_config_rejects_unknown_options():
    with pytest.raises(TypeError, match="hiden"):
        runs.run_config("digits", hiden=4)


def test_prepare_run_refuses_a_method_on_a_stacked_model_before_training():
    cfg = runs.run_config("next_letter", method="rtrl", layers=2)
    with pytest.raises(ValueError, match="method rtrl needs one unidirectional layer"):
        runs.prepare_run(cfg)


@pytest.mark.parametrize(
    "fn, kwargs, words",
    [
        (runs.compare_run, dict(methods=["bptt", "nonsense"]), "nonsense"),
        (runs.compare_run, dict(methods=["layerwise"]), "element-wise cell"),
        (runs.compare_run, dict(seeds=[0, -1]), "seeds"),
        (runs.compare_run, dict(seeds=[]), "seeds"),
        (runs.compare_copy_run, dict(methods=["rflo"]), "zucchet-copy"),
    ],
)
def test_compare_arguments_are_checked_before_anything_runs(tmp_path, fn, kwargs, words):
    with pytest.raises(ValueError, match=words):
        fn(out=tmp_path / "c", **kwargs)
    assert not (tmp_path / "c").exists()


def _elman_reference(params, data):
    """Mean cross-entropy and accuracy over the valid steps, by a NumPy loop over
    ``h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``, ``z_t = W h_t + b``."""
    cell, head = ({k: np.asarray(v, np.float64) for k, v in p._asdict().items()} for p in params)
    ce, hits, n = 0.0, 0, 0
    for x, y, length in zip(data["x"], data["y"], data["length"]):
        h = np.zeros(cell["w_hh"].shape[0])
        for t in range(length):
            h = np.tanh(cell["w_ih"] @ x[t] + cell["b_ih"] + cell["w_hh"] @ h + cell["b_hh"])
            z = head["w"] @ h + head["b"]
            logp = z - z.max() - np.log(np.sum(np.exp(z - z.max())))
            ce -= logp[y[t]]
            hits += int(np.argmax(z) == y[t])
            n += 1
    return ce / n, hits / n


def test_train_run_writes_its_files_and_evaluate_run_recomputes_the_metrics(tmp_path):
    cfg = runs.run_config("next_letter", steps=20, eval_every=10)
    run = runs.prepare_run(cfg)
    result = runs.train_run(run, tmp_path / "run", progress=False)
    assert result.files == list(runs.RUN_FILES)
    assert [h["step"] for h in result.history] == [10, 20]
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["config"] == cfg and saved["final"] == result.final
    assert saved["params"] == run.num_params == 9 * 10 + 10 * 10 + 2 * 10 + 10 * 9 + 9
    assert len(result.samples) == 2 and result.samples[0].startswith("c.next= ")

    loss, acc = _elman_reference(result.params, run.data.test)
    ev = runs.evaluate_run(tmp_path / "run")
    assert ev.step == 20 and ev.cfg == cfg
    np.testing.assert_allclose(ev.metrics["test_loss"], loss, rtol=1e-5)
    np.testing.assert_allclose(ev.metrics["test_accuracy"], acc, rtol=1e-6)  # float32
    np.testing.assert_allclose(ev.metrics["test_loss"], result.final["test_loss"], rtol=1e-6)

    # A configuration that no longer fits the checkpoint, then no configuration at all.
    saved["config"]["hidden"] = 11
    (tmp_path / "run" / "config.json").write_text(json.dumps(saved))
    with pytest.raises(CheckpointError, match=r"checkpoint\.msgpack.*does not fit"):
        runs.evaluate_run(tmp_path / "run" / "checkpoint.msgpack")
    (tmp_path / "run" / "config.json").unlink()
    with pytest.raises(ValueError, match=r"config\.json.*does not exist"):
        runs.evaluate_run(tmp_path / "run")
