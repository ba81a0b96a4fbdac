"""The generic battery, run over every registered cell (``CELL_CASES`` in conftest.py).

Each cell is checked against independent references: a NumPy transcription of its
docstring equations, PyTorch's cells, a Python loop of ``step``, finite differences.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import CELL_CASES, HIDDEN_SIZE, INPUT_SIZE, random_inputs
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

import jaxrnn

T = 6


def _setup(make, dtype=jnp.float64, seed=0):
    cell = make(dtype)
    kp, kx = jax.random.split(jax.random.key(seed))
    params = cell.init(kp)
    xs = random_inputs(kx, T, dtype=dtype)
    return cell, params, xs


def _python_loop(cell, params, xs, carry=None):
    carry = cell.initial_carry(params) if carry is None else carry
    ys = []
    for t in range(xs.shape[0]):
        carry, y = cell.step(params, carry, xs[t])
        ys.append(y)
    return carry, jnp.stack(ys)


def _close(a, b, rtol=1e-12, atol=1e-12):
    jax.tree_util.tree_map(
        lambda u, v: np.testing.assert_allclose(u, v, rtol=rtol, atol=atol), a, b
    )


# ------------------------------------------------------------------ shapes and dtypes


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_shapes_and_dtypes_under_jit_and_vmap(cell_case, dtype):
    _, make = cell_case
    cell, params, _ = _setup(make, dtype)
    assert cell.input_size == INPUT_SIZE
    for leaf in jax.tree_util.tree_leaves(params):
        assert leaf.dtype == dtype
    carry = cell.initial_carry(params)
    x = jnp.ones((INPUT_SIZE,), dtype)
    c1, y = jax.jit(cell.step)(params, carry, x)
    assert y.shape == (cell.output_size,) and y.dtype == dtype
    assert jax.tree_util.tree_structure(c1) == jax.tree_util.tree_structure(carry)
    for a, b in zip(jax.tree_util.tree_leaves(c1), jax.tree_util.tree_leaves(carry)):
        assert a.shape == b.shape and a.dtype == dtype
    B = 4
    cb = jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (B, *a.shape)), carry)
    xb = jnp.ones((B, INPUT_SIZE), dtype)
    _, yb = jax.jit(jax.vmap(cell.step, in_axes=(None, 0, 0)))(params, cb, xb)
    assert yb.shape == (B, cell.output_size)
    np.testing.assert_allclose(yb[0], y, rtol=1e-6)


def test_parameter_shapes_follow_pytorch_layout():
    H, I, P = 4, 3, 2
    p = jaxrnn.rnn(I, H).init(jax.random.key(0))
    assert (p.w_ih.shape, p.w_hh.shape, p.b_ih.shape, p.b_hh.shape) == ((H, I), (H, H), (H,), (H,))
    p = jaxrnn.gru(I, H).init(jax.random.key(0))
    assert (p.w_ih.shape, p.w_hh.shape, p.b_ih.shape) == ((3 * H, I), (3 * H, H), (3 * H,))
    p = jaxrnn.lstm(I, H, proj_size=P).init(jax.random.key(0))
    assert (p.w_ih.shape, p.w_hh.shape, p.w_hr.shape) == ((4 * H, I), (4 * H, P), (P, H))
    c = jaxrnn.lstm(I, H, proj_size=P).initial_carry(p)
    assert isinstance(c, jaxrnn.LSTMCarry) and c.h.shape == (P,) and c.c.shape == (H,)
    p = jaxrnn.lstm(I, H, bias=False).init(jax.random.key(0))
    assert p.b_ih is None and p.b_hh is None and p.w_hr is None


def test_default_init_is_pytorch_uniform():
    H = 64
    p = jaxrnn.lstm(32, H, dtype=jnp.float64).init(jax.random.key(1))
    bound = 1 / math.sqrt(H)
    for leaf in jax.tree_util.tree_leaves(p):
        assert float(jnp.max(jnp.abs(leaf))) <= bound
    w = np.asarray(p.w_hh).ravel()  # 16384 draws: the std of U(-b, b) is b / sqrt(3)
    assert abs(w.std() - bound / math.sqrt(3)) < 0.02 * bound
    assert abs(w.mean()) < 0.02 * bound


def test_initializers_are_selectable():
    ortho = jaxrnn.initializers.orthogonal_blocks(4)
    cell = jaxrnn.lstm(3, 8, recurrent_init=ortho, bias_init=jaxrnn.initializers.zeros)
    p = cell.init(jax.random.key(0))
    for g in range(4):
        block = np.asarray(p.w_hh[g * 8 : (g + 1) * 8], np.float64)
        np.testing.assert_allclose(block @ block.T, np.eye(8), atol=1e-5)
    assert float(jnp.abs(p.b_ih).max()) == 0.0


def test_forget_bias_is_stored_in_the_parameters():
    H = 5
    p = jaxrnn.lstm(3, H, forget_bias=1.0).init(jax.random.key(0))
    np.testing.assert_array_equal(p.b_ih[H : 2 * H] + p.b_hh[H : 2 * H], np.ones(H))
    q = jaxrnn.lstm(3, H).init(jax.random.key(0))  # the other gates keep PyTorch's draw
    np.testing.assert_array_equal(p.b_ih[:H], q.b_ih[:H])


# ---------------------------------------------------- equations: NumPy and PyTorch


_TORCH_FAMILIES = ("rnn", "gru", "lstm")  # the cells whose equations PyTorch shares


def _sigmoid(a):
    return 1 / (1 + np.exp(-a))


def _numpy_step(name, p, carry, x):
    """The docstring equations, transcribed independently in NumPy."""
    p = [None if a is None else np.asarray(a) for a in p]
    if name.startswith("rnn"):
        w_ih, w_hh, b_ih, b_hh = p
        b = 0 if b_ih is None else b_ih + b_hh
        a = w_ih @ x + w_hh @ carry + b
        h = np.maximum(a, 0) if name == "rnn_relu" else np.tanh(a)
        return h, h
    if name.startswith("indrnn"):
        w_ih, u, b = p
        h = np.tanh(w_ih @ x + u * carry + (0 if b is None else b))
        return h, h
    if name.startswith("gru"):
        w_ih, w_hh, b_ih, b_hh = p
        H = w_hh.shape[1]
        b_ih = np.zeros(3 * H) if b_ih is None else b_ih
        b_hh = np.zeros(3 * H) if b_hh is None else b_hh
        Wr, Wz, Wn = np.split(w_ih, 3)
        Ur, Uz, Un = np.split(w_hh, 3)
        bir, biz, bin_ = np.split(b_ih, 3)
        bhr, bhz, bhn = np.split(b_hh, 3)
        r = _sigmoid(Wr @ x + bir + Ur @ carry + bhr)
        z = _sigmoid(Wz @ x + biz + Uz @ carry + bhz)
        n = np.tanh(Wn @ x + bin_ + r * (Un @ carry + bhn))
        h = (1 - z) * n + z * carry
        return h, h
    w_ih, w_hh, b_ih, b_hh, w_hr = p
    h0, c0 = np.asarray(carry.h), np.asarray(carry.c)
    b = 0 if b_ih is None else b_ih + b_hh
    i, f, g, o = np.split(w_ih @ x + w_hh @ h0 + b, 4)
    c = _sigmoid(f) * c0 + _sigmoid(i) * np.tanh(g)
    h = _sigmoid(o) * np.tanh(c)
    if w_hr is not None:
        h = w_hr @ h
    return jaxrnn.LSTMCarry(h, c), h


@pytest.mark.parametrize("name", [n for n in sorted(CELL_CASES) if n.startswith(_TORCH_FAMILIES)])
def test_step_matches_numpy_equations(name):
    cell, params, xs = _setup(CELL_CASES[name])
    carry = cell.initial_carry(params)
    ref = jax.tree_util.tree_map(np.asarray, carry)
    for t in range(T):
        carry, y = cell.step(params, carry, xs[t])
        ref, y_ref = _numpy_step(name, params, ref, np.asarray(xs[t]))
        _close(y, y_ref)
        _close(carry, ref)


def _torch_copy(module, names, params):
    import torch

    with torch.no_grad():
        for field, tname in names.items():
            value = getattr(params, field)
            if value is not None:
                getattr(module, tname).copy_(torch.tensor(np.asarray(value)))


@pytest.mark.parametrize("name", [n for n in sorted(CELL_CASES) if n.startswith(_TORCH_FAMILIES)])
def test_step_matches_torch_cells(name):
    """Each step against torch.nn.{RNN,GRU,LSTM}Cell (LSTMP: one-layer torch.nn.LSTM)."""
    torch = pytest.importorskip("torch")
    cell, params, xs = _setup(CELL_CASES[name])
    bias = params.b_ih is not None
    is_lstm = name.startswith("lstm")
    if name == "lstm_proj":
        tm = torch.nn.LSTM(INPUT_SIZE, HIDDEN_SIZE, bias=bias, proj_size=2).double()
        names = {
            "w_ih": "weight_ih_l0",
            "w_hh": "weight_hh_l0",
            "b_ih": "bias_ih_l0",
            "b_hh": "bias_hh_l0",
            "w_hr": "weight_hr_l0",
        }
        _torch_copy(tm, names, params)
        ty = tm(torch.tensor(np.asarray(xs)))[0].detach().numpy()
        _, ys = jaxrnn.scan(cell, params, xs)
        np.testing.assert_allclose(np.asarray(ys), ty, rtol=1e-12, atol=1e-13)
        return
    if name.startswith("rnn"):
        nl = "relu" if name == "rnn_relu" else "tanh"
        tc = torch.nn.RNNCell(INPUT_SIZE, HIDDEN_SIZE, bias=bias, nonlinearity=nl)
    elif name.startswith("gru"):
        tc = torch.nn.GRUCell(INPUT_SIZE, HIDDEN_SIZE, bias=bias)
    else:
        tc = torch.nn.LSTMCell(INPUT_SIZE, HIDDEN_SIZE, bias=bias)
    tc = tc.double()
    names = {"w_ih": "weight_ih", "w_hh": "weight_hh", "b_ih": "bias_ih", "b_hh": "bias_hh"}
    _torch_copy(tc, names, params)
    carry = cell.initial_carry(params)
    th = torch.zeros(1, HIDDEN_SIZE, dtype=torch.float64)
    tcarry = (th, th.clone()) if is_lstm else th
    for t in range(T):
        carry, y = cell.step(params, carry, xs[t])
        tcarry = tc(torch.tensor(np.asarray(xs[t]))[None], tcarry)
        ty = tcarry[0] if is_lstm else tcarry
        np.testing.assert_allclose(np.asarray(y), ty.detach().numpy()[0], rtol=1e-12, atol=1e-13)


# ----------------------------------------------------------------- scan semantics


def test_scan_equals_python_loop(cell_case):
    _, make = cell_case
    cell, params, xs = _setup(make)
    c_loop, ys_loop = _python_loop(cell, params, xs)
    c_scan, ys_scan = jax.jit(lambda p, x: jaxrnn.scan(cell, p, x))(params, xs)
    _close(ys_scan, ys_loop)
    _close(c_scan, c_loop)
    # unrolling changes nothing
    _, ys_un = jaxrnn.scan(cell, params, xs, unroll=True)
    _close(ys_un, ys_loop)


def test_reverse_equals_flipped_forward(cell_case):
    _, make = cell_case
    cell, params, xs = _setup(make)
    c_rev, ys_rev = jaxrnn.scan(cell, params, xs, reverse=True)
    c_fwd, ys_fwd = jaxrnn.scan(cell, params, xs[::-1])
    _close(ys_rev, ys_fwd[::-1])
    _close(c_rev, c_fwd)


def test_reset_flags_restart_the_carry(cell_case):
    _, make = cell_case
    cell, params, xs = _setup(make)
    reset = jnp.zeros((T,), bool).at[2].set(True).at[4].set(True)
    _, ys = jaxrnn.scan(cell, params, xs, reset=reset)
    pieces = [jaxrnn.scan(cell, params, xs[a:b])[1] for a, b in ((0, 2), (2, 4), (4, T))]
    _close(ys, jnp.concatenate(pieces))
    # reverse: each episode is read backwards on its own
    _, ys_rev = jaxrnn.scan(cell, params, xs, reset=reset, reverse=True)
    pieces = [
        jaxrnn.scan(cell, params, xs[a:b], reverse=True)[1] for a, b in ((0, 2), (2, 4), (4, T))
    ]
    _close(ys_rev, jnp.concatenate(pieces))


@settings(max_examples=12, deadline=None)
@given(data=st.data())
def test_masked_padded_runs_equal_unpadded_runs(data):
    name = data.draw(st.sampled_from(sorted(CELL_CASES)))
    reverse = data.draw(st.booleans())
    batch = data.draw(st.integers(1, 4))
    lengths = data.draw(st.lists(st.integers(1, T), min_size=batch, max_size=batch))
    cell, params, _ = _setup(CELL_CASES[name])
    xs = random_inputs(jax.random.key(7), batch * T).reshape(batch, T, INPUT_SIZE)
    run = jax.vmap(lambda x, n: jaxrnn.scan(cell, params, x, length=n, reverse=reverse))
    carries, ys = run(xs, jnp.asarray(lengths))
    for b, n in enumerate(lengths):
        c_ref, y_ref = jaxrnn.scan(cell, params, xs[b, :n], reverse=reverse)
        _close(ys[b, :n], y_ref)
        np.testing.assert_array_equal(ys[b, n:], 0.0)
        _close(jax.tree_util.tree_map(lambda a, b=b: a[b], carries), c_ref)


def test_masked_reverse_with_resets_equals_unpadded(cell_case):
    _, make = cell_case
    cell, params, xs = _setup(make)
    reset = jnp.zeros((T,), bool).at[2].set(True).at[5].set(True)  # index 5 is padding
    _, ys = jaxrnn.scan(cell, params, xs, length=4, reset=reset, reverse=True)
    _, ref = jaxrnn.scan(cell, params, xs[:4], reset=reset[:4], reverse=True)
    _close(ys[:4], ref)
    np.testing.assert_array_equal(ys[4:], 0.0)


# --------------------------------------------------------------------- derivatives


def test_check_grads_float64(cell_case):
    _, make = cell_case
    cell, params, xs = _setup(make)

    @jax.jit
    def loss(p, x):
        carry, ys = jaxrnn.scan(cell, p, x[:4])
        return jnp.sum(ys**2) + sum(jnp.sum(c) for c in jax.tree_util.tree_leaves(carry))

    check_grads(loss, (params, xs), order=1, modes=("fwd", "rev"), eps=1e-5, atol=1e-8, rtol=1e-7)


def test_forward_mode_through_a_sequence_layer(cell_case):
    _, make = cell_case
    cell, _, xs = _setup(make)
    layer = jaxrnn.stack(cell, jaxrnn.gru(cell.output_size, 4, dtype=jnp.float64))
    lp = layer.init(jax.random.key(3))

    def f(x):
        return layer.apply(lp, x, length=4)[1]

    tangent = random_inputs(jax.random.key(4), T)
    _, jvp_out = jax.jit(lambda x, v: jax.jvp(f, (x,), (v,)))(xs, tangent)
    jac = jax.jit(jax.jacrev(f))(xs)  # (T, O, T, I)
    np.testing.assert_allclose(
        jvp_out, jnp.einsum("toki,ki->to", jac, tangent), rtol=1e-10, atol=1e-12
    )
    jac_fwd = jax.jit(jax.jacfwd(f))(xs)
    np.testing.assert_allclose(jac_fwd, jac, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("factory", "kwargs", "match"),
    [
        (jaxrnn.rnn, {"input_size": 0, "hidden_size": 3}, "input_size"),
        (jaxrnn.gru, {"input_size": 2, "hidden_size": -1}, "hidden_size"),
        (jaxrnn.rnn, {"input_size": 2, "hidden_size": 3, "nonlinearity": "gelu"}, "nonlinearity"),
        (jaxrnn.lstm, {"input_size": 2, "hidden_size": 3, "proj_size": 3}, "proj_size"),
        (jaxrnn.lstm, {"input_size": 2, "hidden_size": 3, "proj_size": -1}, "proj_size"),
        (
            jaxrnn.lstm,
            {"input_size": 2, "hidden_size": 3, "bias": False, "forget_bias": 1.0},
            "forget_bias",
        ),
        (jaxrnn.gru, {"input_size": 2, "hidden_size": 3, "dtype": jnp.int32}, "dtype"),
    ],
)
def test_bad_factory_arguments_raise(factory, kwargs, match):
    with pytest.raises(ValueError, match=match):
        factory(**kwargs)
