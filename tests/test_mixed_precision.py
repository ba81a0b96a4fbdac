"""Mixed precision: bfloat16 weights and inputs, float32 carry and accumulation.

The reference is the float32 model: on the same (bfloat16-rounded) weights the wrapper
must compute exactly what float32 computes (so nothing inside runs in bfloat16), and
over 10,000 steps it must stay within a stated tolerance of the float32 model on the
original float32 weights."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn

F32, BF16 = jnp.float32, jnp.bfloat16
T_LONG, I, H = 10_000, 4, 16


def _long(seed, **kw):
    inner = jaxrnn.lstm(I, H, dtype=F32, **kw)
    layer = jaxrnn.mixed_precision(jaxrnn.recurrent(inner))
    p32 = inner.init(jax.random.key(seed))
    pb = layer.init(jax.random.key(seed))
    xs32 = jax.random.normal(jax.random.key(seed + 1), (T_LONG, I), F32)
    return inner, layer, p32, pb, xs32


def _up(tree):
    return jax.tree_util.tree_map(lambda a: a.astype(F32), tree)


def test_ten_thousand_step_lstm_stays_within_tolerance_of_float32():
    inner, layer, p32, pb, xs32 = _long(0)
    assert all(a.dtype == BF16 for a in jax.tree_util.tree_leaves(pb))
    carry, ys = jax.jit(layer.apply)(pb, xs32.astype(BF16))
    assert ys.dtype == F32 and carry.h.dtype == F32 and carry.c.dtype == F32
    assert bool(jnp.all(jnp.isfinite(ys)))
    _, ys_ref = jaxrnn.scan(inner, p32, xs32)
    err = np.abs(np.asarray(ys, np.float64) - np.asarray(ys_ref, np.float64))
    # Stated tolerance (README): max 1e-2, mean 1e-3 (measured: 1.6e-3 and 1.6e-4).
    assert err.max() < 1e-2 and err.mean() < 1e-3, (err.max(), err.mean())


def test_carry_and_accumulation_stay_float32_where_bfloat16_would_fail():
    # forget_bias=5 makes the cell state integrate its input: |c| grows past 10, where
    # bfloat16's spacing is 1/16 or more, so a bfloat16 carry or bfloat16 arithmetic
    # would drift. On the same rounded weights and inputs the wrapper equals float32.
    inner, layer, _, pb, xs32 = _long(1, forget_bias=5.0)
    xs = xs32.astype(BF16)
    carry, ys = jax.jit(layer.apply)(pb, xs)
    carry_ref, ys_ref = jaxrnn.scan(inner, _up(pb), xs.astype(F32))
    assert float(jnp.max(jnp.abs(carry_ref.c))) > 10
    np.testing.assert_allclose(ys, ys_ref, rtol=0, atol=1e-5)
    np.testing.assert_allclose(carry.c, carry_ref.c, rtol=1e-5)
    # The same model entirely in bfloat16 does drift (so the check above can fail).
    _, ys_bf16 = jaxrnn.scan(jaxrnn.lstm(I, H, dtype=BF16, forget_bias=5.0), pb, xs)
    assert float(jnp.max(jnp.abs(ys_bf16.astype(F32) - ys_ref))) > 1e-2


def test_cell_wrapper_equals_a_loop_of_the_step_and_keeps_the_fused_path():
    inner = jaxrnn.gru(I, H, dtype=F32)
    cell = jaxrnn.mixed_precision(inner)
    assert cell.sequence is not None and cell.projection is not None
    p = cell.init(jax.random.key(2))
    xs = jax.random.normal(jax.random.key(3), (7, I), F32).astype(BF16).astype(F32)
    carry, ys = jaxrnn.scan(cell, p, xs)
    h = cell.initial_carry(p)
    assert h.dtype == F32
    step = jax.jit(cell.step)
    for t in range(7):
        h, y = step(p, h, xs[t].astype(BF16))
        np.testing.assert_allclose(y, ys[t], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(h, carry, rtol=1e-6, atol=1e-6)


def test_gradients_flow_to_bfloat16_params():
    layer = jaxrnn.mixed_precision(jaxrnn.nn.LSTM(I, H, bidirectional=True).layer)
    p = layer.init(jax.random.key(4))
    xs = jax.random.normal(jax.random.key(5), (6, I), F32).astype(BF16)

    def loss(params, xs):
        return jnp.sum(layer.apply(params, xs)[1] ** 2)

    g = jax.grad(loss)(p, xs)
    g_ref = jax.grad(lambda q: loss(q, xs))(_up(p))  # float32 params, same values
    for a, b in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(g_ref)):
        assert a.dtype == BF16
        np.testing.assert_allclose(np.asarray(a, np.float32), b.astype(BF16).astype(F32))


def test_bad_arguments():
    with pytest.raises(ValueError, match="inner must be"):
        jaxrnn.mixed_precision(jaxrnn.nn.LSTM(I, H))
    with pytest.raises(ValueError, match="param_dtype must be a floating dtype"):
        jaxrnn.mixed_precision(jaxrnn.lstm(I, H), param_dtype=jnp.int8)
