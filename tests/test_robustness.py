"""Bad input, class by class (issue 13): every case raises ``ValueError`` (or
``TypeError``) from jaxrnn's own code, naming the argument or the file, before any long
computation; the CLI exits 2 with one line; a checkpoint never half-exists.

Classes: the low-level path (``cell.step``, ``jaxrnn.scan``, ``Layer.apply``), carry
dtypes, checks done early (at build time or before training), lists where arrays are
expected, checkpoints, the command line, optimiser numbers, and the checked mode for
traced lengths and masks.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import CELL_CASES
from flax import serialization

import jaxrnn
from jaxrnn import cli, nn, runs
from jaxrnn.checkpoint import (
    _HEADER,
    MAGIC,
    VERSION,
    CheckpointError,
    load_checkpoint,
    read_metadata,
    save_checkpoint,
)
from jaxrnn.engine import checked
from jaxrnn.train import EarlyStopping, fit, make_optimizer

F64 = jnp.float64
KEY = jax.random.key(0)


def _lstm(I=3, H=5, **kw):
    cell = jaxrnn.lstm(I, H, dtype=F64, **kw)
    return cell, cell.init(KEY)


# ------------------------------------------------------------- the low-level path


@pytest.mark.parametrize("name", sorted(CELL_CASES))
def test_every_cell_step_names_a_wrong_input_width(name):
    cell = CELL_CASES[name](F64)
    params = cell.init(KEY)
    carry = cell.initial_carry(params)
    x = jnp.zeros((cell.input_size + 1,), F64)
    with pytest.raises(ValueError, match=rf"x must have shape \({cell.input_size},\)"):
        cell.step(params, carry, x)


def test_step_checks_rank_params_and_carry():
    cell, p = _lstm()
    c = cell.initial_carry(p)
    with pytest.raises(ValueError, match=r"x must have shape \(3,\).*jax.vmap.*got \(2, 3\)"):
        cell.step(p, c, jnp.zeros((2, 3), F64))
    other = jaxrnn.gru(3, 5, dtype=F64).init(KEY)
    with pytest.raises(ValueError, match="params must have the structure of lstm params"):
        cell.step(other, c, jnp.zeros(3, F64))
    wide = jaxrnn.lstm(4, 5, dtype=F64).init(KEY)
    with pytest.raises(ValueError, match=r"params\.w_ih must have shape \(20, 3\)"):
        cell.step(wide, c, jnp.zeros(3, F64))
    # the LSTM carry's c of width 1 used to broadcast silently
    with pytest.raises(ValueError, match=r"carry\.c must have shape \(5,\), got \(1,\)"):
        cell.step(p, jaxrnn.LSTMCarry(c.h, jnp.zeros(1, F64)), jnp.zeros(3, F64))
    with pytest.raises(ValueError, match="carry must have the structure of"):
        cell.step(p, c.h, jnp.zeros(3, F64))


def test_step_checks_run_once_when_traced_not_per_step():
    cell, p = _lstm()
    seen = []
    step = cell.step

    def counting(params, carry, x):
        seen.append(1)
        return step(params, carry, x)

    counted = cell._replace(step=counting, sequence=None)
    f = jax.jit(lambda p, xs: jaxrnn.engine.run(counted, p, xs, cell.initial_carry(p)))
    f(p, jnp.ones((20, 3), F64))
    f(p, jnp.ones((20, 3), F64))
    assert len(seen) == 1  # traced once; nothing runs in Python per step


def test_scan_checks_inputs_params_and_carry():
    cell, p = _lstm()
    xs = jnp.ones((4, 3), F64)
    with pytest.raises(ValueError, match=r"xs must have shape \(T, 3\), got \(4, 2\)"):
        jaxrnn.scan(cell, p, jnp.ones((4, 2), F64))
    with pytest.raises(ValueError, match=r"xs must have shape \(T, 3\), got \(3,\)"):
        jaxrnn.scan(cell, p, jnp.ones((3,), F64))
    with pytest.raises(ValueError, match="params must have the structure"):
        jaxrnn.scan(cell, jaxrnn.gru(3, 5, dtype=F64).init(KEY), xs)
    with pytest.raises(ValueError, match=r"carry\.c must have shape \(5,\)"):
        jaxrnn.scan(cell, p, xs, jaxrnn.LSTMCarry(jnp.zeros(5, F64), jnp.zeros(1, F64)))


def test_layer_apply_checks_params():
    cell, p = _lstm()
    xs = jnp.ones((4, 3), F64)
    layer = jaxrnn.recurrent(cell)
    with pytest.raises(ValueError, match="params must have the structure"):
        layer.apply(jaxrnn.gru(3, 5, dtype=F64).init(KEY), xs)
    bi = jaxrnn.bidirectional(cell)
    with pytest.raises(ValueError, match=r"params must be a pair \(forward_params"):
        bi.apply(p, xs)
    st = jaxrnn.stack(cell, jaxrnn.gru(5, 2, dtype=F64))
    with pytest.raises(ValueError, match=r"params must be a tuple with one entry per layer \(2\)"):
        st.apply(p, xs)
    with pytest.raises(ValueError, match="xs must have shape"):
        layer.apply(p, jnp.ones((4, 7), F64))


# -------------------------------------------------------------------- carry dtypes


def test_carry_dtypes_are_checked():
    cell, p = _lstm()
    xs = jnp.ones((4, 3), F64)
    bad = jaxrnn.LSTMCarry(jnp.zeros(5, jnp.int32), jnp.zeros(5, F64))
    with pytest.raises(ValueError, match=r"carry\.h must have dtype float64, got int32"):
        jaxrnn.scan(cell, p, xs, bad)
    mixed = jaxrnn.LSTMCarry(jnp.zeros(5, F64), jnp.zeros(5, jnp.float16))
    with pytest.raises(ValueError, match=r"carry\.c must have dtype float64, got float16"):
        cell.step(p, mixed, xs[0])
    layer = nn.LSTM(3, 5, dtype=jnp.float32)
    lp = layer.init(KEY)
    x = jnp.ones((4, 2, 3), jnp.float32)
    h0 = jnp.zeros((1, 2, 5), jnp.float32)
    with pytest.raises(ValueError, match=r"c_0 must have dtype float32.*got float16"):
        layer.apply(lp, x, (h0, jnp.zeros((1, 2, 5), jnp.float16)))
    with pytest.raises(ValueError, match=r"h_0 must have dtype float32.*got int32"):
        layer.apply(lp, x, (jnp.zeros((1, 2, 5), jnp.int32), h0))
    sd = {k: np.asarray(v).astype(np.int64) for k, v in jaxrnn.state_dict(layer, lp).items()}
    with pytest.raises(ValueError, match=r"state_dict\['weight_ih_l0'\] must have a floating"):
        jaxrnn.load_state_dict(layer, sd)


# ---------------------------------------------------------------- checked early


def test_checks_happen_at_build_time():
    with pytest.raises(ValueError, match=r"merge='sum' needs equal output sizes.*8.*16"):
        jaxrnn.bidirectional(jaxrnn.gru(4, 8), jaxrnn.gru(4, 16), merge="sum")
    for bad in ("1", float("nan"), True, [1.0]):
        with pytest.raises(ValueError, match="forget_bias must be a finite number"):
            jaxrnn.lstm(3, 5, forget_bias=bad)
    with pytest.raises(ValueError, match="forget_bias must be a finite number"):
        jaxrnn.cifg_lstm(3, 5, forget_bias="1")
    with pytest.raises(ValueError, match="hidden_size must be a positive integer, got 0"):
        jaxrnn.gru(3, 0)


def test_early_stopping_metric_is_checked_before_training():
    cell = jaxrnn.gru(2, 3, dtype=F64)
    traced = []

    def loss_fn(p, batch, key):
        traced.append(1)  # runs when the train step is traced, i.e. when training starts
        return jnp.sum(jaxrnn.scan(cell, p, batch["x"][0])[1] ** 2), {}

    data = {"x": np.ones((4, 3, 2))}
    with pytest.raises(ValueError, match=r"'accuracy' is not a metric of eval_fn.*\['loss'"):
        fit(
            loss_fn,
            cell.init(KEY),
            data,
            steps=5,
            key=KEY,
            batch_size=1,
            eval_fn=lambda p: {"loss": 0.0},
            eval_every=1,
            early_stopping=EarlyStopping("accuracy"),
            progress=False,
        )
    assert traced == []
    for bad, words in (
        (EarlyStopping("loss", patience=0), "patience"),
        (("loss",), "EarlyStopping"),
    ):
        with pytest.raises(ValueError, match=words):
            fit(loss_fn, cell.init(KEY), data, steps=1, key=KEY, batch_size=1,
                eval_fn=lambda p: {"loss": 0.0}, eval_every=1, early_stopping=bad)  # fmt: skip


# ---------------------------------------------------- lists where arrays are expected


def test_lists_are_accepted_where_arrays_are_and_batches_must_agree():
    layer = jaxrnn.recurrent(jaxrnn.gru(2, 3, dtype=F64))
    p = layer.init(KEY)
    xs = jax.random.normal(KEY, (3, 6, 2), F64)
    want = jaxrnn.apply_batched(layer, p, xs, length=jnp.array([6, 2, 3]))
    got = jaxrnn.apply_batched(layer, p, xs, length=[6, 2, 3])
    np.testing.assert_array_equal(got[1], want[1])
    with pytest.raises(ValueError, match=r"carry must have leading batch dimensions \(3,\)"):
        jaxrnn.apply_batched(layer, p, xs, jnp.zeros((2, 3), F64))
    with pytest.raises(ValueError, match=r"length must be in \[1, 6\]"):
        jaxrnn.apply_batched(layer, p, xs, length=[6, 7, 3])

    lstm = nn.LSTM(2, 3, dtype=F64)
    lp = lstm.init(KEY)
    x = jnp.swapaxes(xs, 0, 1)  # (T, B, I)
    out, _ = jax.jit(lstm.apply)(lp, x, lengths=[6, 2, 3])
    ref, _ = lstm.apply(lp, x, lengths=np.array([6, 2, 3]))
    np.testing.assert_array_equal(out, ref)
    _, ys = jaxrnn.scan(jaxrnn.gru(2, 3, dtype=F64), p, xs[0], mask=[1, 1, 0, 1, 0, 0])
    assert np.all(np.asarray(ys)[[2, 4, 5]] == 0) and np.all(np.asarray(ys)[[0, 1, 3]] != 0)


# -------------------------------------------------------------------- checkpoints


def _raw_checkpoint(path, obj):
    payload = serialization.msgpack_serialize(obj)
    import hashlib

    header = _HEADER.pack(MAGIC, VERSION, len(payload), hashlib.sha256(payload).digest())
    path.write_bytes(header + payload)


@pytest.mark.parametrize(
    "obj, words",
    [
        ({"weights": np.zeros(3)}, "not a jaxrnn payload"),
        ([1, 2, 3], "not a jaxrnn payload"),
        ({"state": {}, "metadata": "{not json"}, "unreadable metadata"),
        ({"state": {}, "metadata": "[1, 2]"}, "metadata list"),
    ],
)
def test_checkpoint_with_a_valid_checksum_but_a_wrong_payload(tmp_path, obj, words):
    path = tmp_path / "ck.msgpack"
    _raw_checkpoint(path, obj)
    for read in (read_metadata, load_checkpoint):
        with pytest.raises(CheckpointError, match=words) as e:
            read(path)
        assert str(path) in str(e.value)


def test_checkpoint_that_does_not_fit_the_template_names_the_file(tmp_path):
    path = tmp_path / "ck.msgpack"
    save_checkpoint(path, {"a": jnp.zeros(3)})
    with pytest.raises(CheckpointError, match="does not fit the template") as e:
        load_checkpoint(path, {"a": {"b": jnp.zeros(3)}})
    assert str(path) in str(e.value)


def test_a_killed_save_leaves_a_temporary_file_that_the_next_save_removes(tmp_path):
    path = tmp_path / "ck.msgpack"
    save_checkpoint(path, {"a": jnp.arange(3.0)})
    code = textwrap.dedent(
        f"""
        import os, sys, time
        from jaxrnn import checkpoint
        def hang(fd):
            print("writing", flush=True)
            time.sleep(60)
        checkpoint.os.fsync = hang
        checkpoint.save_checkpoint({str(path)!r}, {{"a": checkpoint.np.zeros(3)}})
        """
    )
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env=env)
    assert proc.stdout.readline().strip() == b"writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    leftovers = list(tmp_path.glob(".ck.msgpack.*.tmp"))
    assert len(leftovers) == 1
    np.testing.assert_array_equal(load_checkpoint(path)[0]["a"], np.arange(3.0))  # intact
    save_checkpoint(path, {"a": jnp.ones(3)})
    assert list(tmp_path.glob(".ck.msgpack.*.tmp")) == []
    np.testing.assert_array_equal(load_checkpoint(path)[0]["a"], np.ones(3))


# ------------------------------------------------------------------ command line


def _one_line_exit_2(capsys, argv, words):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jaxrnn: error: "), err
    assert "Traceback" not in out + err
    for w in words:
        assert w in lines[0], lines[0]
    assert "wrote" not in out
    return lines[0]


def test_cli_bad_outputs_and_numbers(capsys, tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    _one_line_exit_2(
        capsys, ["train", "--task", "next_letter", "--out", a_file], ["a_file", "--out"]
    )
    _one_line_exit_2(capsys, ["compare", "--out", a_file], ["a_file"])
    _one_line_exit_2(capsys, ["train", "--task", "next_letter", "--clip", "nan"], ["nan"])
    _one_line_exit_2(capsys, ["train", "--task", "next_letter", "--clip", "-1"], ["-1"])
    _one_line_exit_2(capsys, ["train", "--task", "next_letter", "--steps", "0"], ["'0'"])
    binary = tmp_path / "b.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    _one_line_exit_2(capsys, ["train", "--task", "char_lm", "--text", binary], ["b.bin", "UTF-8"])
    assert not (tmp_path / "runs").exists()


def test_cli_evaluate_on_broken_run_directories(capsys, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    ck = run / "checkpoint.msgpack"
    cfg = run / "config.json"
    save_checkpoint(ck, {"a": jnp.zeros(2)})
    _one_line_exit_2(capsys, ["evaluate", run], ["config.json", "does not exist"])
    cfg.write_text("{not json")
    _one_line_exit_2(capsys, ["evaluate", run], ["config.json", "not JSON"])
    cfg.write_text(json.dumps({"final": {}}))
    _one_line_exit_2(capsys, ["evaluate", run], ["config.json", "'config'"])
    cfg.write_text(json.dumps({"config": {"task": "next_letter", "cell": "rnn"}}))
    _one_line_exit_2(capsys, ["evaluate", run], ["config.json", "does not describe a run"])
    good = dict(runs.COMMON_DEFAULTS, **runs.TASK_DEFAULTS["next_letter"], task="next_letter")
    cfg.write_text(json.dumps({"config": {**good, "data_dir": None, "text": None}}))
    _one_line_exit_2(capsys, ["evaluate", run], ["checkpoint.msgpack", "does not fit"])
    _raw_checkpoint(ck, {"weights": np.zeros(3)})
    _one_line_exit_2(capsys, ["evaluate", run], ["checkpoint.msgpack", "not a jaxrnn payload"])
    ck.write_bytes(b"garbage")
    _one_line_exit_2(capsys, ["evaluate", run], ["checkpoint.msgpack", "truncated"])


# -------------------------------------------------------------------- optimisers


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(clip_norm=math.nan), "clip_norm must be a finite number"),
        (dict(clip_norm=math.inf), "clip_norm must be a finite number"),
        (dict(clip_norm=-1.0), "clip_norm must be a positive number"),
        (dict(learning_rate=math.inf), "learning_rate must be a positive finite number"),
        (dict(learning_rate=math.nan), "learning_rate must be a positive finite number"),
        (dict(decay_steps=2.5), "decay_steps must be a non-negative integer"),
    ],
)
def test_make_optimizer_rejects_non_finite_numbers(kwargs, words):
    with pytest.raises(ValueError, match=words):
        make_optimizer("adam", **{"learning_rate": 1e-3, **kwargs})


def test_make_optimizer_clips_like_optax():
    g = {"w": jnp.array([3.0, 4.0])}
    opt = make_optimizer("sgd", 1.0, clip_norm=1.0)
    ref = optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(1.0))
    u, _ = opt.update(g, opt.init(g))
    v, _ = ref.update(g, ref.init(g))
    np.testing.assert_allclose(u["w"], v["w"], rtol=1e-12)


# --------------------------------------------------- checked mode for traced values


def test_checked_mode_catches_traced_lengths_and_masks():
    cell = jaxrnn.gru(2, 3, dtype=F64)
    p = cell.init(KEY)
    xs = jax.random.normal(KEY, (5, 2), F64)

    def run(p, xs, n, m):
        return jaxrnn.scan(cell, p, xs, length=n, mask=m)[1]

    f = jax.jit(checked(run))
    ok = jnp.ones(5, jnp.int32)
    err, ys = f(p, xs, jnp.int32(3), ok)
    assert err.get() is None
    np.testing.assert_array_equal(ys, jaxrnn.scan(cell, p, xs, length=3)[1])
    err, _ = f(p, xs, jnp.int32(6), ok)
    assert "length must be in [1, 5]" in err.get()
    err, _ = f(p, xs, jnp.int32(0), ok)
    assert "length must be in [1, 5]" in err.get()
    err, _ = f(p, xs, jnp.int32(5), ok.at[2].set(2))
    assert "mask must contain only 0/1" in err.get()
    with pytest.raises(Exception, match=r"length must be in \[1, 5\]"):
        f(p, xs, jnp.int32(9), ok)[0].throw()
    # the default is unchecked: traced values are trusted (documented), no error
    ys = jax.jit(run)(p, xs, jnp.int32(9), ok)
    np.testing.assert_array_equal(ys, jaxrnn.scan(cell, p, xs)[1])


def test_checked_mode_on_nn_layers_leaves_the_compiled_apply_usable():
    gru = nn.GRU(2, 3, dtype=F64)
    p = gru.init(KEY)
    x = jax.random.normal(KEY, (5, 2, 2), F64)
    err, _ = jax.jit(checked(gru.apply))(p, x, lengths=jnp.array([5, 6]))
    assert "lengths must be in [1, 5]" in err.get()
    err, (out, _) = jax.jit(checked(gru.apply))(p, x, lengths=jnp.array([5, 2]))
    assert err.get() is None
    ref, _ = gru.apply(p, x, lengths=jnp.array([5, 2]))  # the cached compiled apply
    np.testing.assert_array_equal(out, ref)


def test_validation_adds_nothing_to_the_traced_program():
    """The checks run in Python; outside ``checked`` no comparison of a traced length, no
    key of a shape probe, ends up in the program (here, the jitted nn.LSTM apply and a
    scan of a checked step)."""
    lstm = nn.LSTM(3, 4, bidirectional=True, dtype=F64)
    p = lstm.init(KEY)
    x = jnp.ones((5, 2, 3), F64)
    text = str(jax.make_jaxpr(lambda p, x, n: lstm.apply(p, x, lengths=n))(p, x, jnp.array([5, 2])))
    cell = jaxrnn.gru(3, 4, dtype=F64)._replace(sequence=None)  # scan the checked step
    pc = cell.init(KEY)
    text += str(jax.make_jaxpr(lambda p, xs, n: jaxrnn.scan(cell, p, xs, length=n))(pc, x[:, 0], 3))
    for primitive in ("random_seed", "reduce_and", "check"):
        assert primitive not in text
    with_checks = jax.make_jaxpr(checked(lambda p, x, n: lstm.apply(p, x, lengths=n)))
    assert "reduce_and" in str(with_checks(p, x, jnp.array([5, 2])))
