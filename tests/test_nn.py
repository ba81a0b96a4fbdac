"""The PyTorch-shaped layers :mod:`jaxrnn.nn`: shapes, jit, init, and input validation.

Numerical parity with PyTorch is in ``test_torch_parity.py``; here the shapes of every
configuration are checked abstractly (``jax.eval_shape``, no compilation), ``apply``
under ``jax.jit`` is compared with a NumPy transcription of the equations and with the
underlying :class:`~jaxrnn.Layer`, and every documented ``ValueError`` is provoked.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn
from jaxrnn import nn

I, H, P, T, B = 3, 4, 2, 5, 3


def _make(kind, num_layers=1, bidirectional=False, batch_first=False, bias=True, dtype=None):
    kw = dict(
        num_layers=num_layers,
        bidirectional=bidirectional,
        batch_first=batch_first,
        bias=bias,
        dtype=dtype or jnp.float64,
    )
    if kind == "rnn":
        return nn.RNN(I, H, **kw)
    if kind == "gru":
        return nn.GRU(I, H, **kw)
    return nn.LSTM(I, H, proj_size=P if kind == "lstm_proj" else 0, **kw)


# ------------------------------------------------------------------------- shapes

SHAPE_CASES = list(
    itertools.product(
        ("rnn", "gru", "lstm", "lstm_proj"), (1, 2), (False, True), ("TBI", "BTI", "TI")
    )
)


@pytest.mark.parametrize("kind,num_layers,bidirectional,layout", SHAPE_CASES)
def test_shapes(kind, num_layers, bidirectional, layout):
    layer = _make(kind, num_layers, bidirectional, batch_first=layout == "BTI")
    D = 2 if bidirectional else 1
    H_out = P if kind == "lstm_proj" else H
    assert (layer.num_directions, layer.output_size) == (D, H_out)
    params = jax.eval_shape(layer.init, jax.random.key(0))
    # params[k][d]: PyTorch's weight_ih_l{k}{_reverse} etc.
    assert len(params) == num_layers and all(len(p) == D for p in params)
    for k, d in itertools.product(range(num_layers), range(D)):
        p = params[k][d]
        G = {"rnn": 1, "gru": 3}.get(kind, 4)
        assert p.w_ih.shape == (G * H, I if k == 0 else D * H_out)
        assert p.w_hh.shape == (G * H, H_out)
        assert p.b_ih.shape == p.b_hh.shape == (G * H,)
        if kind.startswith("lstm"):
            assert (p.w_hr is None) == (kind == "lstm")
            if kind == "lstm_proj":
                assert p.w_hr.shape == (P, H)
        assert p.w_ih.dtype == jnp.float64
    batch = () if layout == "TI" else (B,)
    x_shape = {"TBI": (T, B, I), "BTI": (B, T, I), "TI": (T, I)}[layout]
    x = jax.ShapeDtypeStruct(x_shape, jnp.float64)
    hx = layer.initial_state(None if layout == "TI" else B)
    for given in (None, hx):
        out, hn = jax.eval_shape(layer.apply, params, x, given)
        assert out.shape == (*x_shape[:-1], D * H_out) and out.dtype == jnp.float64
        if kind.startswith("lstm"):
            h_n, c_n = hn
            assert c_n.shape == (num_layers * D, *batch, H)
        else:
            h_n = hn
        assert h_n.shape == (num_layers * D, *batch, H_out)
        assert jax.tree_util.tree_map(jnp.shape, hn) == jax.tree_util.tree_map(jnp.shape, hx)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_dtype_follows_config(dtype):
    layer = nn.LSTM(I, H, num_layers=2, proj_size=P, dtype=dtype)
    params = jax.eval_shape(layer.init, jax.random.key(0))
    assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(params)} == {jnp.dtype(dtype)}
    out, (h, c) = jax.eval_shape(layer.apply, params, jax.ShapeDtypeStruct((T, B, I), dtype))
    assert out.dtype == h.dtype == c.dtype == dtype


def test_layer_objects_are_light_static_config():
    a = nn.LSTM(I, H, 2, True, False, 0.0, True, P)  # PyTorch's positional order
    b = nn.LSTM(I, H, num_layers=2, bidirectional=True, proj_size=P)
    assert a == b and hash(a) == hash(b)
    assert nn.RNN(I, H, 1, "relu").nonlinearity == "relu"  # RNN: nonlinearity 4th
    c = nn.GRU(np.int64(I), np.int64(H), np.int32(2), bidirectional=np.bool_(True))
    assert c == nn.GRU(I, H, 2, bidirectional=True) and type(c.hidden_size) is int
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.hidden_size = 5
    assert isinstance(a.layer, jaxrnn.Layer)
    assert (a.layer.input_size, a.layer.output_size) == (I, 2 * P)
    assert len(a.cells) == 2 and all(len(c) == 2 for c in a.cells)
    assert all(isinstance(c, jaxrnn.Cell) for cs in a.cells for c in cs)
    assert a.cells[0][0].input_size == I and a.cells[1][1].input_size == 2 * P
    assert "LSTM(input_size=3" in repr(a)


# ------------------------------------------------------------------ init and apply


def test_init_is_pytorch_default_uniform():
    Hb = 64
    layer = nn.GRU(I, Hb, num_layers=2, bidirectional=True, dtype=jnp.float64)
    params = jax.jit(layer.init)(jax.random.key(1))
    bound = 1 / math.sqrt(Hb)
    leaves = jax.tree_util.tree_leaves(params)
    flat = np.concatenate([np.ravel(a) for a in leaves])
    assert np.all(np.abs(flat) <= bound)
    # U(-b, b): mean 0, variance b^2/3; tolerances are 5 standard errors.
    n = flat.size
    assert abs(flat.mean()) < 5 * bound / math.sqrt(3 * n)
    assert abs(flat.var() - bound**2 / 3) < 5 * bound**2 * math.sqrt(4 / 45 / n)
    # Every layer and direction draws its own weights.
    w = [np.asarray(params[k][d].w_hh) for k in range(2) for d in range(2)]
    assert all(not np.allclose(u, v) for u, v in itertools.combinations(w, 2))


def _np_lstm(p, xs, h, c, length):
    """NumPy transcription of the LSTM equations (gate order i, f, g, o), one direction."""
    sig = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    ys = np.zeros((len(xs), p.w_hr.shape[0] if p.w_hr is not None else len(c)))
    for t in range(length):
        a = p.w_ih @ xs[t] + p.b_ih + p.w_hh @ h + p.b_hh
        i, f, g, o = np.split(a, 4)
        c = sig(f) * c + sig(i) * np.tanh(g)
        h = sig(o) * np.tanh(c)
        if p.w_hr is not None:
            h = p.w_hr @ h
        ys[t] = h
    return ys, h, c


def test_jit_apply_matches_numpy_equations_with_lengths_and_batch_first():
    """A 2-layer LSTMP, batch first, given state and lengths, against a NumPy loop."""
    layer = nn.LSTM(I, H, num_layers=2, batch_first=True, proj_size=P, dtype=jnp.float64)
    params = jax.tree_util.tree_map(np.asarray, layer.init(jax.random.key(2)))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, I))
    h0 = rng.standard_normal((2, B, P))
    c0 = rng.standard_normal((2, B, H))
    lengths = np.array([3, 5, 1])
    out, (h_n, c_n) = jax.jit(layer.apply)(params, x, (h0, c0), lengths=lengths)
    for b in range(B):
        xs = x[b]
        for k in range(2):
            xs, h, c = _np_lstm(params[k][0], xs, h0[k, b], c0[k, b], lengths[b])
            np.testing.assert_allclose(h_n[k, b], h, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(c_n[k, b], c, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(out[b], xs, rtol=1e-12, atol=1e-12)
    # Traced lengths work too (no value check is possible then); same numbers.
    out2, _ = jax.jit(lambda p, x, hx, n: layer.apply(p, x, hx, lengths=n))(
        params, x, (h0, c0), jnp.asarray(lengths)
    )
    np.testing.assert_allclose(out2, out, rtol=1e-12, atol=1e-12)


def test_unbatched_equals_batch_of_one_and_the_underlying_layer():
    layer = nn.GRU(I, H, num_layers=1, bidirectional=True, dtype=jnp.float64)
    params = layer.init(jax.random.key(3))
    x = jax.random.normal(jax.random.key(4), (T, I), jnp.float64)
    h0 = jax.random.normal(jax.random.key(5), (2, H), jnp.float64)
    run = jax.jit(layer.apply)
    out, h_n = run(params, x, h0, lengths=jnp.asarray(3))
    out_b, h_b = run(params, x[:, None], h0[:, None], lengths=jnp.asarray([3]))
    np.testing.assert_allclose(out, out_b[:, 0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h_n, h_b[:, 0], rtol=1e-12, atol=1e-12)
    # .layer is the per-example Layer; its carry is [layer][direction].
    carry = ((h0[0], h0[1]),)
    c, ys = jax.jit(lambda p, x, c: layer.layer.apply(p, x, c, length=3))(params, x, carry)
    np.testing.assert_allclose(ys, out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(jnp.stack([c[0][0], c[0][1]]), h_n, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: nn.LSTM(I, H, num_layers=0), "num_layers must be a positive integer"),
        (lambda: nn.GRU(I, H, num_layers=1.5), "num_layers must be a positive integer"),
        (lambda: nn.LSTM(0, H), "input_size must be a positive integer"),
        (lambda: nn.RNN(I, -1), "hidden_size must be a positive integer"),
        (lambda: nn.LSTM(I, H, num_layers=2, dropout=1.5), r"dropout must be a number in \[0, 1\]"),
        (lambda: nn.GRU(I, H, num_layers=2, dropout=-0.1), r"dropout must be a number in \[0, 1\]"),
        (lambda: nn.RNN(I, H, dropout="0.5"), r"dropout must be a number in \[0, 1\]"),
        (lambda: nn.LSTM(I, H, proj_size=H), r"proj_size must be smaller than hidden_size \(4\)"),
        (lambda: nn.LSTM(I, H, proj_size=-1), "proj_size must be a non-negative integer"),
        (lambda: nn.GRU(I, H, proj_size=2), "proj_size is only supported for LSTM, not GRU"),
        (lambda: nn.RNN(I, H, proj_size=2), "proj_size is only supported for LSTM, not RNN"),
        (lambda: nn.RNN(I, H, nonlinearity="sigmoid"), "nonlinearity must be 'tanh' or 'relu'"),
        (lambda: nn.LSTM(I, H, bidirectional=1), "bidirectional must be a bool"),
        (lambda: nn.LSTM(I, H, dtype=jnp.int32), "dtype must be a floating dtype"),
    ],
)
def test_constructor_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_dropout_with_one_layer_warns_like_torch():
    with pytest.warns(UserWarning, match="no effect with num_layers=1"):
        nn.LSTM(I, H, dropout=0.5)


LSTM2 = nn.LSTM(I, H, num_layers=2, bidirectional=True, proj_size=P, dtype=jnp.float64)
GRU1 = nn.GRU(I, H, batch_first=True, dtype=jnp.float64)
PARAMS_LSTM2 = jax.eval_shape(LSTM2.init, jax.random.key(0))
PARAMS_GRU1 = jax.eval_shape(GRU1.init, jax.random.key(0))
X = jnp.zeros((T, B, I))
XB = jnp.zeros((B, T, I))


@pytest.mark.parametrize(
    "call,match",
    [
        # x: width, ndim, dtype
        (lambda f: f(LSTM2, PARAMS_LSTM2, jnp.zeros((T, B, 4))), r"x must have shape \(T, B, 3\)"),
        (lambda f: f(GRU1, PARAMS_GRU1, jnp.zeros((B, T, 2))), r"x must have shape \(B, T, 3\)"),
        (lambda f: f(LSTM2, PARAMS_LSTM2, jnp.zeros((2, T, B, I))), r"x must be 3-D \(T, B, 3\)"),
        (lambda f: f(LSTM2, PARAMS_LSTM2, jnp.zeros((I,))), r"or 2-D \(T, 3\), got 1-D"),
        (lambda f: f(LSTM2, PARAMS_LSTM2, jnp.zeros((T, B, I), jnp.int32)), "floating dtype"),
        (lambda f: f(LSTM2, PARAMS_LSTM2, [[0.0] * I] * T), r"x must be an array of shape"),
        (lambda f: f(LSTM2, PARAMS_LSTM2, jnp.zeros((0, B, I))), "at least one time step"),
        # h_0 / c_0
        (
            lambda f: f(LSTM2, PARAMS_LSTM2, X, jnp.zeros((4, B, P))),
            r"hx must be a tuple \(h_0, c_0\)",
        ),
        (
            lambda f: f(LSTM2, PARAMS_LSTM2, X, (jnp.zeros((2, B, P)), jnp.zeros((4, B, H)))),
            r"h_0 must have shape \(4, 3, 2\)",
        ),
        (
            lambda f: f(LSTM2, PARAMS_LSTM2, X, (jnp.zeros((4, B, P)), jnp.zeros((4, B, P)))),
            r"c_0 must have shape \(4, 3, 4\)",
        ),
        (
            lambda f: f(LSTM2, PARAMS_LSTM2, X[:, 0], (jnp.zeros((4, B, P)), jnp.zeros((4, H)))),
            r"h_0 must have shape \(4, 2\)",
        ),
        (
            lambda f: f(GRU1, PARAMS_GRU1, XB, jnp.zeros((1, T, H))),
            r"h_0 must have shape \(1, 3, 4\)",
        ),
        (
            lambda f: f(GRU1, PARAMS_GRU1, XB, jnp.zeros((1, B, H), jnp.int32)),
            "h_0 must have dtype float64",
        ),
        # lengths: range, batch size, dtype
        (
            lambda f: f(GRU1, PARAMS_GRU1, XB, lengths=jnp.array([1, 6, 2])),
            r"lengths must be in \[1, 5\]",
        ),
        (
            lambda f: f(GRU1, PARAMS_GRU1, XB, lengths=np.array([0, 2, 2])),
            r"lengths must be in \[1, 5\]",
        ),
        (
            lambda f: f(GRU1, PARAMS_GRU1, XB, lengths=jnp.array([1, 2])),
            r"lengths must have shape \(3,\)",
        ),
        (
            lambda f: f(GRU1, PARAMS_GRU1, XB, lengths=jnp.array([1.0, 2.0, 3.0])),
            "lengths must have an integer dtype",
        ),
        (
            lambda f: f(GRU1, PARAMS_GRU1, XB[0], lengths=jnp.array([2])),
            "lengths must have a scalar for unbatched x",
        ),
        # params of another configuration
        (lambda f: f(LSTM2, PARAMS_GRU1, X), "params must be a tuple over 2 layers"),
        (
            lambda f: f(GRU1, jax.eval_shape(nn.GRU(I, 5).init, jax.random.key(0)), XB),
            r"params\[0\]\[0\]\.w_ih must have shape \(12, 3\), got \(15, 3\)",
        ),
    ],
)
def test_apply_errors(call, match):
    """Each error is raised in Python on static shapes, eagerly and when traced alike."""

    def eager(layer, *args, **kw):
        return layer.apply(*args, **kw)

    def traced(layer, params, x, *args, **kw):  # as under jax.jit, without compiling
        if not hasattr(x, "shape"):
            return layer.apply(params, x, *args, **kw)
        return jax.eval_shape(lambda p, x: layer.apply(p, x, *args, **kw), params, x)

    for f in (eager, traced):
        with pytest.raises(ValueError, match=match):
            call(f)
