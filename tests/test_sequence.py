"""Sequence layers: bidirectional, stack, dropout, batching over leading dims, errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import INPUT_SIZE, random_inputs

import jaxrnn
from jaxrnn.sequence import apply_batched

T = 7


def _close(a, b, tol=1e-12):
    jax.tree_util.tree_map(lambda u, v: np.testing.assert_allclose(u, v, rtol=tol, atol=tol), a, b)


@pytest.fixture
def xs():
    return random_inputs(jax.random.key(1), T)


def test_recurrent_layer_equals_scan(xs):
    cell = jaxrnn.lstm(INPUT_SIZE, 4, dtype=jnp.float64)
    layer = jaxrnn.recurrent(cell)
    p = layer.init(jax.random.key(0))
    _close(layer.apply(p, xs, length=5), jaxrnn.scan(cell, p, xs, length=5))
    assert (layer.input_size, layer.output_size) == (INPUT_SIZE, 4)


@pytest.mark.parametrize("length", [None, 4])
def test_bidirectional_is_forward_and_reversed_backward(xs, length):
    f, b = (
        jaxrnn.gru(INPUT_SIZE, 4, dtype=jnp.float64),
        jaxrnn.rnn(INPUT_SIZE, 3, dtype=jnp.float64),
    )
    layer = jaxrnn.bidirectional(f, b)
    assert layer.output_size == 7
    (pf, pb) = p = layer.init(jax.random.key(0))
    (cf, cb), ys = layer.apply(p, xs, length=length)
    n = T if length is None else length
    cf_ref, yf = jaxrnn.scan(f, pf, xs[:n])
    cb_ref, yb = jaxrnn.scan(b, pb, xs[:n][::-1])
    _close(ys[:n], jnp.concatenate([yf, yb[::-1]], axis=-1))
    np.testing.assert_array_equal(ys[n:], 0.0)
    _close((cf, cb), (cf_ref, cb_ref))


@pytest.mark.parametrize("merge", ["sum", "mean", "mul", jnp.subtract])
def test_bidirectional_merges(xs, merge):
    cell = jaxrnn.gru(INPUT_SIZE, 4, dtype=jnp.float64)
    concat, merged = jaxrnn.bidirectional(cell), jaxrnn.bidirectional(cell, merge=merge)
    p = concat.init(jax.random.key(0))
    _, y2 = concat.apply(p, xs)
    _, y = merged.apply(p, xs)
    fn = {"sum": jnp.add, "mean": lambda a, b: (a + b) / 2, "mul": jnp.multiply}.get(merge, merge)
    _close(y, fn(y2[:, :4], y2[:, 4:]))
    assert merged.output_size == 4


def test_bidirectional_directions_have_their_own_parameters():
    layer = jaxrnn.bidirectional(jaxrnn.gru(2, 3))
    pf, pb = layer.init(jax.random.key(0))
    assert not np.allclose(pf.w_hh, pb.w_hh)


def test_stack_feeds_each_layer_the_previous_outputs(xs):
    c1, c2 = jaxrnn.lstm(INPUT_SIZE, 4, dtype=jnp.float64), jaxrnn.gru(4, 2, dtype=jnp.float64)
    layer = jaxrnn.stack(c1, c2)
    p1, p2 = p = layer.init(jax.random.key(0))
    (k1, k2), ys = layer.apply(p, xs, length=6)
    r1, y1 = jaxrnn.scan(c1, p1, xs, length=6)
    r2, y2 = jaxrnn.scan(c2, p2, y1, length=6)
    _close(ys, y2)
    _close((k1, k2), (r1, r2))


def test_deep_bidirectional_stack(xs):
    cell = lambda i: jaxrnn.lstm(i, 3, dtype=jnp.float64)  # noqa: E731
    layer = jaxrnn.stack(jaxrnn.bidirectional(cell(INPUT_SIZE)), jaxrnn.bidirectional(cell(6)))
    p = layer.init(jax.random.key(0))
    _, ys = jax.jit(layer.apply)(p, xs)
    assert ys.shape == (T, 6)
    _, y1 = jaxrnn.bidirectional(cell(INPUT_SIZE)).apply(p[0], xs)
    _, y2 = jaxrnn.bidirectional(cell(6)).apply(p[1], y1)
    _close(ys, y2)


def test_stack_dropout_only_with_a_key_and_not_after_the_last_layer(xs):
    c1, c2 = jaxrnn.gru(INPUT_SIZE, 64, dtype=jnp.float64), jaxrnn.rnn(64, 5, dtype=jnp.float64)
    deterministic = jaxrnn.stack(c1, c2)
    dropped = jaxrnn.stack(c1, c2, dropout=0.5)
    p = deterministic.init(jax.random.key(0))
    _close(dropped.apply(p, xs), deterministic.apply(p, xs))  # no key: evaluation mode
    _, y_a = dropped.apply(p, xs, key=jax.random.key(1))
    _, y_b = dropped.apply(p, xs, key=jax.random.key(2))
    assert not np.allclose(y_a, y_b)
    # dropout acts between the layers only: a one-layer stack ignores it
    single = jaxrnn.stack(c1, dropout=0.5)
    _close(single.apply(p[:1], xs, key=jax.random.key(1)), single.apply(p[:1], xs))


def test_dropout_preserves_the_mean_and_drops_the_stated_fraction():
    rate = 0.3
    ys = jnp.ones((2000, 50), jnp.float64)
    out = jaxrnn.sequence._dropout(jax.random.key(0), rate, ys)
    n = ys.size
    dropped = float(jnp.mean(out == 0))
    # binomial: std of the dropped fraction is sqrt(p(1-p)/n); allow 5 sigma
    assert abs(dropped - rate) < 5 * np.sqrt(rate * (1 - rate) / n)
    np.testing.assert_allclose(out[out != 0], 1 / (1 - rate))
    assert abs(float(out.mean()) - 1.0) < 5 * np.sqrt(rate / (1 - rate) / n)


def test_apply_batched_over_two_leading_dims():
    cell = jaxrnn.lstm(INPUT_SIZE, 4, dtype=jnp.float64)
    layer = jaxrnn.bidirectional(cell)
    p = layer.init(jax.random.key(0))
    xs = random_inputs(jax.random.key(3), 2 * 3 * T).reshape(2, 3, T, INPUT_SIZE)
    lengths = jnp.array([[7, 1, 4], [2, 5, 6]])
    carry, ys = apply_batched(layer, p, xs, length=lengths)
    assert ys.shape == (2, 3, T, 8)
    for i in range(2):
        for j in range(3):
            c_ref, y_ref = layer.apply(p, xs[i, j], length=lengths[i, j])
            _close(ys[i, j], y_ref)
            _close(jax.tree_util.tree_map(lambda a, i=i, j=j: a[i, j], carry), c_ref)


def test_apply_batched_given_carry_and_keys():
    layer = jaxrnn.stack(
        jaxrnn.gru(INPUT_SIZE, 8, dtype=jnp.float64),
        jaxrnn.gru(8, 2, dtype=jnp.float64),
        dropout=0.5,
    )
    p = layer.init(jax.random.key(0))
    xs = random_inputs(jax.random.key(3), 4 * T).reshape(4, T, INPUT_SIZE)
    carry = (jnp.ones((4, 8)), jnp.zeros((4, 2)))
    c, ys = apply_batched(layer, p, xs, carry)
    c_ref, y_ref = layer.apply(p, xs[2], (carry[0][2], carry[1][2]))
    _close(ys[2], y_ref)
    _close((c[0][2], c[1][2]), c_ref)
    _, y_drop = apply_batched(layer, p, xs, carry, key=jax.random.key(9))
    assert not np.allclose(y_drop, ys)


# --------------------------------------------------------------------------- errors


def test_layer_input_errors():
    layer = jaxrnn.recurrent(jaxrnn.lstm(3, 4, dtype=jnp.float64))
    p = layer.init(jax.random.key(0))
    with pytest.raises(ValueError, match=r"xs must have shape \(T, 3\)"):
        layer.apply(p, jnp.ones((5, 2)))
    with pytest.raises(ValueError, match=r"xs must have shape \(T, 3\)"):
        layer.apply(p, jnp.ones((2, 5, 3)))
    with pytest.raises(ValueError, match="floating dtype"):
        layer.apply(p, jnp.ones((5, 3), jnp.int32))
    with pytest.raises(ValueError, match=r"length must be in \[1, 5\]"):
        layer.apply(p, jnp.ones((5, 3)), length=6)
    with pytest.raises(ValueError, match=r"length must be in \[1, 5\]"):
        layer.apply(p, jnp.ones((5, 3)), length=0)
    with pytest.raises(ValueError, match="length must be an integer"):
        layer.apply(p, jnp.ones((5, 3)), length=2.5)
    with pytest.raises(ValueError, match=r"reset must have shape \(5,\)"):
        layer.apply(p, jnp.ones((5, 3)), reset=jnp.zeros((4,), bool))
    with pytest.raises(ValueError, match=r"carry\.h must have shape \(4,\)"):
        layer.apply(p, jnp.ones((5, 3)), jaxrnn.LSTMCarry(jnp.zeros(3), jnp.zeros(4)))
    with pytest.raises(ValueError, match="carry must have the structure"):
        layer.apply(p, jnp.ones((5, 3)), jnp.zeros(4))


def test_composite_errors():
    with pytest.raises(ValueError, match=r"dropout must be a number in \[0, 1\]"):
        jaxrnn.stack(jaxrnn.gru(2, 3), jaxrnn.gru(3, 3), dropout=1.5)
    with pytest.raises(ValueError, match=r"dropout must be a number in \[0, 1\]"):
        jaxrnn.stack(jaxrnn.gru(2, 3), dropout=-0.1)
    with pytest.raises(ValueError, match="layer 1 input_size must equal layer 0 output_size"):
        jaxrnn.stack(jaxrnn.gru(2, 3), jaxrnn.gru(4, 3))
    with pytest.raises(ValueError, match="merge must be one of"):
        jaxrnn.bidirectional(jaxrnn.gru(2, 3), merge="max")
    with pytest.raises(ValueError, match=r"backward\.input_size"):
        jaxrnn.bidirectional(jaxrnn.gru(2, 3), jaxrnn.gru(3, 3))
    layer = jaxrnn.recurrent(jaxrnn.gru(2, 3))
    p = layer.init(jax.random.key(0))
    with pytest.raises(ValueError, match=r"length must have shape \(2,\)"):
        apply_batched(layer, p, jnp.ones((2, 4, 2)), length=jnp.array([1, 2, 3]))
    with pytest.raises(ValueError, match=r"length must be in \[1, 4\]"):
        apply_batched(layer, p, jnp.ones((2, 4, 2)), length=jnp.array([1, 5]))


@pytest.mark.parametrize("dtype", [jnp.int32, jnp.int64, jnp.uint8])
def test_length_of_any_integer_dtype(xs, dtype):
    cell = jaxrnn.gru(INPUT_SIZE, 4, dtype=jnp.float64)
    p = cell.init(jax.random.key(0))
    for reverse in (False, True):
        ref = jaxrnn.scan(cell, p, xs, length=4, reverse=reverse)
        _close(jaxrnn.scan(cell, p, xs, length=jnp.asarray(4, dtype), reverse=reverse), ref)


def test_input_dtype_must_match_the_carry():
    cell = jaxrnn.gru(INPUT_SIZE, 4)  # float32 parameters
    p = cell.init(jax.random.key(0))
    with pytest.raises(ValueError, match="xs must have dtype float32"):
        jaxrnn.scan(cell, p, jnp.ones((5, INPUT_SIZE), jnp.float64))
