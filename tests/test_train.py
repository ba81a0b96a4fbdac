"""Training: masked losses against PyTorch/numpy, the train step, the fit loop (resume
bit for bit, early stopping), the gradient-method registry, and CI-sized learning
checks (digits LSTM, embedded Reber, adding T=100, the seed's next-letter SRN)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxrnn
from jaxrnn import losses, tasks
from jaxrnn.models import generate, make_layer, objective, sequence_model
from jaxrnn.train import (
    EarlyStopping,
    batch_sampler,
    evaluate_batched,
    fit,
    gradient_methods,
    make_optimizer,
    make_train_step,
    memory_bytes,
)

# ------------------------------------------------------------------------------ losses


def _torch_ce(logits, labels):
    return torch.nn.functional.cross_entropy(
        torch.from_numpy(np.asarray(logits)).reshape(-1, logits.shape[-1]),
        torch.from_numpy(np.asarray(labels, np.int64)).reshape(-1),
        reduction="none",
    ).numpy()


@settings(max_examples=6, deadline=None)
@given(
    B=st.integers(1, 4),
    T=st.integers(1, 6),
    C=st.integers(2, 5),
    seed=st.integers(0, 10_000),
)
def test_masked_sequence_cross_entropy_matches_torch(B, T, C, seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(B, T, C)) * 3
    labels = rng.integers(0, C, (B, T))
    length = rng.integers(1, T + 1, B)
    mask = np.arange(T)[None, :] < length[:, None]
    per = _torch_ce(logits, labels).reshape(B, T)
    want = per[mask].mean()
    got = losses.cross_entropy(
        jnp.asarray(logits), jnp.asarray(labels), losses.length_mask(length, T)
    )
    np.testing.assert_allclose(float(got), want, rtol=1e-12, atol=1e-15)
    bpc = losses.bits_per_character(jnp.asarray(logits), jnp.asarray(labels), mask)
    np.testing.assert_allclose(float(bpc), want / math.log(2), rtol=1e-12, atol=1e-15)
    hits = (logits.argmax(-1) == labels)[mask].mean()
    acc = losses.accuracy(jnp.asarray(logits), jnp.asarray(labels), jnp.asarray(mask))
    np.testing.assert_allclose(float(acc), hits, rtol=1e-12)


def test_soft_cross_entropy_and_mse_match_references():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(3, 4, 5))
    p = rng.dirichlet(np.ones(5), size=(3, 4))
    mask = rng.random((3, 4)) < 0.6
    mask[0, 0] = True
    logp = torch.log_softmax(torch.from_numpy(z), -1).numpy()
    want = -(p * logp).sum(-1)[mask].mean()
    got = losses.soft_cross_entropy(jnp.asarray(z), jnp.asarray(p), jnp.asarray(mask))
    np.testing.assert_allclose(float(got), want, rtol=1e-12)
    y = rng.normal(size=(3, 4, 5))
    want = torch.nn.functional.mse_loss(torch.from_numpy(z[mask]), torch.from_numpy(y[mask])).item()
    got = losses.mse(jnp.asarray(z), jnp.asarray(y), jnp.asarray(mask))
    np.testing.assert_allclose(float(got), want, rtol=1e-12)


def test_pooling_uses_only_the_valid_prefix():
    ys = jnp.asarray(np.arange(12.0).reshape(6, 2))
    np.testing.assert_array_equal(losses.pool_last(ys, 4), [6.0, 7.0])
    np.testing.assert_array_equal(losses.pool_last(ys), [10.0, 11.0])
    np.testing.assert_allclose(losses.pool_mean(ys, 3), np.arange(12.0).reshape(6, 2)[:3].mean(0))


def test_loss_shape_errors_name_the_argument():
    with pytest.raises(ValueError, match="labels must have shape"):
        losses.cross_entropy(jnp.zeros((2, 3)), jnp.zeros((3,), jnp.int32))
    with pytest.raises(ValueError, match="targets must have the shape"):
        losses.mse(jnp.zeros((2, 3)), jnp.zeros((2, 2)))


# -------------------------------------------------------------------------- train step


def _tiny_problem(dtype=jnp.float64):
    rng = np.random.default_rng(0)
    data = {
        "x": rng.normal(size=(24, 5, 3)).astype(np.float64),
        "y": rng.integers(0, 4, 24).astype(np.int32),
    }
    model = sequence_model(make_layer("gru", 3, 6, dtype=dtype), 4, dtype=dtype)
    loss_fn, metric_fn = objective(model, "classify", dtype=dtype)
    return model, loss_fn, metric_fn, data


def test_train_step_sgd_equals_manual_update_and_clipping_bounds_the_step():
    model, loss_fn, _, data = _tiny_problem()
    params = model.init(jax.random.key(0))
    batch = {k: v[:8] for k, v in data.items()}
    grads = jax.jit(jax.grad(lambda p: loss_fn(p, batch, None)[0]))(params)
    step = make_train_step(loss_fn, optax.sgd(0.1))
    new, _, metrics = step(params, optax.sgd(0.1).init(params), batch, jax.random.key(1))
    want = jax.tree_util.tree_map(lambda p, g: p - 0.1 * g, params, grads)
    for a, b in zip(jax.tree_util.tree_leaves(new), jax.tree_util.tree_leaves(want)):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(metrics["grad_norm"], optax.tree.norm(grads), rtol=1e-12)
    # Clipped SGD moves the parameters by exactly lr * clip when |g| > clip.
    clip = 0.1 * float(optax.tree.norm(grads))
    opt = make_optimizer("sgd", 0.5, clip_norm=clip)
    new, _, _ = make_train_step(loss_fn, opt)(params, opt.init(params), batch, None)
    moved = optax.tree.norm(jax.tree_util.tree_map(jnp.subtract, new, params))
    np.testing.assert_allclose(moved, 0.5 * clip, rtol=1e-10)


def test_batch_sampler_is_a_function_of_the_step_and_covers_each_epoch():
    data = {"i": np.arange(10)}
    a, b = batch_sampler(data, 3, seed=5), batch_sampler(data, 3, seed=5)
    seen = np.concatenate([a(s)["i"] for s in range(3)])
    assert len(set(seen.tolist())) == 9  # 3 batches of 3 distinct examples, remainder dropped
    for s in (7, 2, 0, 11):  # any order of queries gives the same batches
        np.testing.assert_array_equal(a(s)["i"], b(s)["i"])
    assert not np.array_equal(a(0)["i"], batch_sampler(data, 3, seed=6)(0)["i"])
    with pytest.raises(ValueError, match="batch_size"):
        batch_sampler(data, 11)


def _leaves(tree):
    tree = jax.tree_util.tree_map(
        lambda x: jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x,
        tree,
    )
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


def test_interrupted_then_resumed_fit_equals_uninterrupted_bit_for_bit(tmp_path):
    model, loss_fn, metric_fn, data = _tiny_problem()
    params = model.init(jax.random.key(0))
    opt = make_optimizer("adam", 1e-2, decay_steps=20)
    kw = dict(
        steps=20,
        key=jax.random.key(3),
        optimizer=opt,
        batch_size=8,
        eval_fn=lambda p: evaluate_batched(metric_fn, p, data),
        eval_every=5,
        progress=False,
    )
    full = fit(loss_fn, params, data, **kw)

    class Interrupt(Exception):
        pass

    def crash(step, state, record):
        if step == 13:
            raise Interrupt

    path = tmp_path / "ck.msgpack"
    with pytest.raises(Interrupt):
        fit(loss_fn, params, data, checkpoint_path=path, checkpoint_every=5, callback=crash, **kw)
    other = model.init(jax.random.key(99))  # ignored: the checkpoint (step 10) wins
    resumed = fit(loss_fn, other, data, checkpoint_path=path, checkpoint_every=5, resume=True, **kw)
    assert resumed.step == full.step == 20
    for a, b in zip(
        _leaves((full.params, full.opt_state, full.key)),
        _leaves((resumed.params, resumed.opt_state, resumed.key)),
    ):
        np.testing.assert_array_equal(a, b)
    strip = lambda h: [{k: v for k, v in r.items() if k != "time"} for r in h]  # noqa: E731
    assert strip(resumed.history) == strip(full.history)


@pytest.mark.parametrize(
    "block_bytes, dtype", [(None, jnp.float64), (3000, jnp.float64), (3000, jnp.float32)]
)
def test_fit_equals_a_plain_loop_of_the_train_step_bit_for_bit(monkeypatch, block_bytes, dtype):
    """fit's batches (sent to the device several steps at a time) and keys (split inside
    its step) are exactly ``batch_sampler(data, ...)(s)`` and ``key, sub = split(key)``:
    one block for all 11 steps, or blocks of 3 steps (a batch is 992 bytes), the last
    one ending past the last step; float32 runs the GRU on oneDNN where built."""
    import jaxrnn.train as train

    if block_bytes is not None:
        monkeypatch.setattr(train, "_BLOCK_BYTES", block_bytes)
    model, loss_fn, _, data = _tiny_problem(dtype)
    params = model.init(jax.random.key(0))
    opt = make_optimizer("adam", 1e-2, decay_steps=11)
    got = fit(
        loss_fn,
        params,
        data,
        steps=11,
        key=jax.random.key(3),
        optimizer=opt,
        batch_size=8,
        data_seed=2,
        progress=False,
    )
    step, sample = make_train_step(loss_fn, opt), batch_sampler(data, 8, seed=2)
    key, opt_state = jax.random.key(3), opt.init(params)
    for s in range(11):
        key, sub = jax.random.split(key)
        params, opt_state, _ = step(params, opt_state, sample(s), sub)
    for a, b in zip(
        _leaves((got.params, got.opt_state, got.key)), _leaves((params, opt_state, key))
    ):
        np.testing.assert_array_equal(a, b)


def test_early_stopping_stops_and_restores_the_best_params():
    model, loss_fn, _, data = _tiny_problem()
    params = model.init(jax.random.key(0))
    scores = iter([0.0, 0.5, 0.7, 0.6, 0.6, 0.6, 0.9])  # the first: fit's check of the key
    seen = []

    def eval_fn(p):
        seen.append(p)
        return {"score": next(scores)}

    r = fit(
        loss_fn,
        params,
        data,
        steps=60,
        key=jax.random.key(0),
        batch_size=8,
        eval_fn=eval_fn,
        eval_every=2,
        early_stopping=EarlyStopping("score", "max", patience=3),
        progress=False,
    )
    assert r.stopped_early and r.step == 10 and r.best == {"step": 4, "value": 0.7}
    for a, b in zip(_leaves(r.params), _leaves(seen[2])):
        np.testing.assert_array_equal(a, b)


# -------------------------------------------------------------------- gradient methods


def _rnn_problem():
    cell = jaxrnn.rnn(2, 4, dtype=jnp.float64)
    params = (
        cell.init(jax.random.key(0)),
        jnp.asarray(np.random.default_rng(0).normal(size=(3, 4))),
    )
    xs = jnp.asarray(np.random.default_rng(1).normal(size=(7, 2)))
    targets = jnp.asarray(np.random.default_rng(2).normal(size=(7, 3)))

    def step_loss(w, y, t):
        return jnp.sum((w @ y - t) ** 2)

    return cell, params, xs, targets, step_loss


def _loop_loss(cell, step_loss, params, xs, targets):
    """Python loop reference (TBPTT against windowed loops: tests/test_grad_approx.py)."""
    h = cell.initial_carry(params[0])
    total = 0.0
    for t in range(xs.shape[0]):
        h, y = cell.step(params[0], h, xs[t])
        total = total + step_loss(params[1], y, targets[t])
    return total


def test_gradient_methods_registry_agrees_with_bptt_where_exact():
    cell, params, xs, targets, step_loss = _rnn_problem()
    methods = gradient_methods()
    assert set(methods) == {"bptt", "tbptt", "rtrl", "snap1", "uoro", "rflo", "layerwise"}
    ref = jax.grad(lambda p: _loop_loss(cell, step_loss, p, xs, targets))(params)
    for name in ("bptt", "rtrl"):
        _, g = methods[name](cell, step_loss)(params, xs, targets, key=jax.random.key(0))
        for a, b in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(ref)):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    _, g = methods["tbptt"](cell, step_loss, k=7)(params, xs, targets)
    for a, b in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(ref)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_generate_greedy_matches_repeated_full_forward():
    V = 5
    model = sequence_model(
        make_layer("gru", V, 8, dtype=jnp.float64), V, readout="all", dtype=jnp.float64
    )
    params = model.init(jax.random.key(0))
    prompt = jax.nn.one_hot(jnp.asarray([1, 3]), V, dtype=jnp.float64)
    toks = generate(
        model,
        params,
        prompt,
        4,
        jax.random.key(1),
        embed=lambda t: jax.nn.one_hot(t, V),
        temperature=0,
    )
    seq = [1, 3]
    for _ in range(4):  # independent: rerun the whole prefix each time
        z = model.apply(params, jax.nn.one_hot(jnp.asarray(seq), V, dtype=jnp.float64))
        seq.append(int(jnp.argmax(z[-1])))
    assert toks.tolist() == seq[2:]


# ------------------------------------------------------------------- learning checks


def _train(data, cell, hidden, *, lr, steps, batch, seed=0, readout=None, decay=True):
    kind = data.meta["kind"]
    readout = readout or ("all" if kind == "tagging" else "last")
    model = sequence_model(
        make_layer(cell, data.meta["input_size"], hidden), data.meta["output_size"], readout=readout
    )
    loss_fn, metric_fn = objective(model, kind)
    opt = make_optimizer("adam", lr, clip_norm=1.0, decay_steps=steps if decay else None)
    r = fit(
        loss_fn,
        model.init(jax.random.key(seed)),
        data.train,
        steps=steps,
        key=jax.random.key(seed + 1),
        optimizer=opt,
        batch_size=batch,
        progress=False,
    )
    return model, r.params, evaluate_batched(metric_fn, r.params, data.test)


def test_digits_lstm_reaches_95_percent_in_400_steps():
    # speed is measured by the benchmarks, not here (the machines are shared)
    data = tasks.digits(0)
    _, _, m = _train(data, "lstm", 64, lr=1e-2, steps=400, batch=64)
    assert m["accuracy"] >= 0.95, m


def test_embedded_reber_lstm_gets_every_test_string_fully_correct():
    data = tasks.embedded_reber(num_train=4000, num_test=500, seed=0)
    _, _, m = _train(data, "lstm", 32, lr=1e-2, steps=1000, batch=16)
    assert m["strings_correct"] == 1.0, m


def test_adding_t100_small_gru_solves_it():
    data = tasks.adding(100, num_train=20000, num_test=1000, seed=0)
    _, _, m = _train(data, "gru", 32, lr=5e-3, steps=2000, batch=32, decay=False)
    assert m["within_tol"] >= 0.95, m
    assert m["loss"] < data.meta["baseline_mse"] / 50, m


def test_seed_next_letter_srn_predicts_d_after_c_and_h_after_fg():
    data = tasks.next_letter()
    model, params, m = _train(data, "rnn", 10, lr=3e-2, steps=300, batch=7)
    from jaxrnn.tasks.next_letter import decode, encode

    for prompt, want in (("c", "d"), ("fg", "h")):
        z = model.apply(params, jnp.asarray(encode(prompt)))
        assert decode(jnp.argmax(z[-1])) == want
    assert m["accuracy"] == 1.0


def test_memory_bytes_counts_arguments_outputs_and_working_memory():
    """``peak = temp + arguments + outputs``: a float64 ``(1000,)`` argument and a
    ``(2, 1000)`` output are 8000 and 16000 bytes."""
    x = jnp.arange(1000.0)
    compiled = jax.jit(lambda a: jnp.stack([a * 2, a + 1])).lower(x).compile()
    mem = memory_bytes(compiled)
    assert mem is not None and mem["temp"] >= 0
    assert mem["peak"] == mem["temp"] + 8000 + 16000
