"""The generic battery, run over every registered cell (``CELL_CASES`` in conftest.py).

Each cell is checked against independent references: a NumPy transcription of the
paper's equations (``references.py``), PyTorch's cells where torch has them, a Python
loop of ``step``, finite differences, and its docstring's parameter count. The
semantics items (reverse, resets, masks, forward mode) run on the representative case
of each family (``FULL_CASES``).
"""

from __future__ import annotations

import math
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import references
from conftest import CELL_CASES, FULL_CASES, case_inputs, random_inputs
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

import jaxrnn

T = 6


def _setup(case, dtype=jnp.float64, seed=0, T=T):
    cell = case(dtype)
    kp, kx = jax.random.split(jax.random.key(seed))
    params = cell.init(kp)
    xs = case_inputs(case, kx, T, dtype=dtype)
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


# float32 on the representative case of each family, float64 on every case
SHAPE_CASES = [(n, jnp.float64) for n in sorted(CELL_CASES)] + [
    (n, jnp.float32) for n in FULL_CASES
]


@pytest.mark.parametrize(("name", "dtype"), SHAPE_CASES)
def test_shapes_and_dtypes_under_jit_and_vmap(name, dtype):
    cell, params, xs = _setup(CELL_CASES[name], dtype)
    assert cell.input_size == xs.shape[1]
    for leaf in jax.tree_util.tree_leaves(params):
        assert leaf.dtype == dtype
    carry = cell.initial_carry(params)
    x = xs[0]
    B = 4
    cb = jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (B, *a.shape)), carry)
    xb = jnp.broadcast_to(x, (B, cell.input_size))

    @jax.jit  # one compilation for both
    def both(params, carry, x, cb, xb):
        return cell.step(params, carry, x), jax.vmap(cell.step, in_axes=(None, 0, 0))(
            params, cb, xb
        )

    (c1, y), (_, yb) = both(params, carry, x, cb, xb)
    assert y.shape == (cell.output_size,) and y.dtype == dtype
    assert jax.tree_util.tree_structure(c1) == jax.tree_util.tree_structure(carry)
    for a, b in zip(jax.tree_util.tree_leaves(c1), jax.tree_util.tree_leaves(carry)):
        assert a.shape == b.shape and a.dtype == dtype
    assert yb.shape == (B, cell.output_size)
    np.testing.assert_allclose(yb[0], y, rtol=1e-6, atol=1e-6)


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


def _eager_loop(cell, params, xs):
    carry = cell.initial_carry(params)
    ys = []
    for t in range(xs.shape[0]):
        carry, y = cell.step(params, carry, xs[t])
        ys.append(y)
    return np.stack(ys)


@pytest.mark.parametrize("name", [n for n in sorted(CELL_CASES) if CELL_CASES[n].numpy])
def test_steps_match_numpy_transcription_of_the_paper(name):
    case = CELL_CASES[name]
    cell, params, xs = _setup(case)
    carry0 = cell.initial_carry(params)
    ref = case.numpy(params, carry0, np.asarray(xs))
    np.testing.assert_allclose(_eager_loop(cell, params, xs), ref, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("name", [n for n in sorted(CELL_CASES) if CELL_CASES[n].torch])
def test_steps_match_torch(name):
    """Every step against ``jaxrnn.to_torch(cell, params)`` (torch.nn.{RNN,GRU,LSTM}Cell;
    LSTMP: a one-layer torch.nn.LSTM with proj_size)."""
    pytest.importorskip("torch")
    cell, params, xs = _setup(CELL_CASES[name])
    ref = references.torch_cell(cell, params, cell.initial_carry(params), xs)
    np.testing.assert_allclose(_eager_loop(cell, params, xs), ref, rtol=1e-12, atol=1e-13)


def test_every_family_has_an_independent_reference():
    """Every registered configuration is checked against NumPy or torch, except the keyed
    zoneout (random masks; tests/test_wrappers.py checks its statistics)."""
    missing = [n for n, c in CELL_CASES.items() if c.numpy is None and not c.torch]
    assert missing == ["zoneout_lstm"]


def test_every_cell_describes_itself_and_pickles(cell_case):
    """Every registered cell carries its factory's description; pickled and unpickled it
    computes the same step. The keyed test wrappers replace ``initial_carry`` after the
    factory (conftest's ``_keyed``), so their recipe is stale by design: the factory's own
    cell is pickled for them instead."""
    name, case = cell_case
    cell, params, xs = _setup(case)
    assert cell.config is not None and cell.config.kind, name
    if any(a is not b for a, b in zip(cell[:-1], cell.config.built, strict=True)):
        cell = cell.config.build()
    other = pickle.loads(pickle.dumps(cell))
    assert other.config.kind == cell.config.kind
    carry = cell.initial_carry(params)
    np.testing.assert_array_equal(
        other.step(params, carry, xs[0])[1], cell.step(params, carry, xs[0])[1]
    )


def test_parameter_count_equals_the_docstring_formula(cell_case):
    _, case = cell_case
    assert jaxrnn.count_params(case(jnp.float64)) == case.n_params


# ----------------------------------------------------------------- scan semantics


def test_scan_equals_python_loop(cell_case):
    _, case = cell_case
    cell, params, xs = _setup(case)
    c_loop, ys_loop = _python_loop(cell, params, xs)

    @jax.jit  # one compilation for the whole test (cheaper than one per scan)
    def run(p, x):
        return jaxrnn.scan(cell, p, x), jaxrnn.scan(cell, p, x, unroll=True)[1]

    (c_scan, ys_scan), ys_un = run(params, xs)
    _close(ys_scan, ys_loop)
    _close(c_scan, c_loop)
    _close(ys_un, ys_loop)  # unrolling changes nothing


def test_reverse_equals_flipped_forward(full_case):
    _, case = full_case
    cell, params, xs = _setup(case)
    (c_rev, ys_rev), (c_fwd, ys_fwd) = jax.jit(
        lambda p, x: (jaxrnn.scan(cell, p, x, reverse=True), jaxrnn.scan(cell, p, x[::-1]))
    )(params, xs)
    _close(ys_rev, ys_fwd[::-1])
    _close(c_rev, c_fwd)


def test_reset_flags_restart_the_carry(full_case):
    """Resets equal the episodes run one after another, each from ``cell.restart`` of
    the carry the previous episode left (``initial_carry`` unless the cell keeps, e.g.,
    a key across episodes)."""
    _, case = full_case
    cell, params, xs = _setup(case)
    reset = jnp.zeros((T,), bool).at[2].set(True).at[4].set(True)
    episodes = ((0, 2), (2, 4), (4, T))

    @jax.jit
    def run(p, x):
        out = {}
        for rev in (False, True):  # reverse: each episode is read backwards on its own
            pieces, carry = {}, cell.initial_carry(p)
            for a, b in episodes[::-1] if rev else episodes:
                carry, pieces[a] = jaxrnn.scan(cell, p, x[a:b], carry, reverse=rev)
                carry = cell.restart(p, carry)
            out[rev] = (
                jaxrnn.scan(cell, p, x, reset=reset, reverse=rev)[1],
                jnp.concatenate([pieces[a] for a, _ in episodes]),
            )
        return out

    for ys, pieces in run(params, xs).values():
        _close(ys, pieces)


@settings(max_examples=12, deadline=None)
@given(data=st.data())
def test_masked_padded_runs_equal_unpadded_runs(data):
    name = data.draw(st.sampled_from(FULL_CASES))
    reverse = data.draw(st.booleans())
    batch = data.draw(st.integers(1, 4))
    lengths = data.draw(st.lists(st.integers(1, T), min_size=batch, max_size=batch))
    case = CELL_CASES[name]
    cell, params, _ = _setup(case)
    keys = jax.random.split(jax.random.key(7), batch)
    xs = jnp.stack([case_inputs(case, k, T) for k in keys])

    def run(xs, lengths):  # one compilation per example: the batch and its references
        batched = jax.vmap(lambda x, n: jaxrnn.scan(cell, params, x, length=n, reverse=reverse))
        refs = [
            jaxrnn.scan(cell, params, xs[b, :n], reverse=reverse) for b, n in enumerate(lengths)
        ]
        return batched(xs, jnp.asarray(lengths)), refs

    run = jax.jit(run, static_argnums=1)
    (carries, ys), refs = run(xs, tuple(lengths))
    for b, n in enumerate(lengths):
        c_ref, y_ref = refs[b]
        _close(ys[b, :n], y_ref)
        np.testing.assert_array_equal(ys[b, n:], 0.0)
        _close(jax.tree_util.tree_map(lambda a, b=b: a[b], carries), c_ref)


def test_masked_reverse_with_resets_equals_unpadded(full_case):
    _, case = full_case
    cell, params, xs = _setup(case)
    reset = jnp.zeros((T,), bool).at[2].set(True).at[5].set(True)  # index 5 is padding
    ys, ref = jax.jit(
        lambda p, x: (
            jaxrnn.scan(cell, p, x, length=4, reset=reset, reverse=True)[1],
            jaxrnn.scan(cell, p, x[:4], reset=reset[:4], reverse=True)[1],
        )
    )(params, xs)
    _close(ys[:4], ref)
    np.testing.assert_array_equal(ys[4:], 0.0)


# --------------------------------------------------------------------- derivatives


def test_check_grads_float64(cell_case):
    """Reverse mode against finite differences on every case. (Forward mode: RTRL ==
    BPTT on every case uses jacfwd of the step, and the next test on the full cases.)"""
    _, case = cell_case
    cell, params, xs = _setup(case)

    @jax.jit
    def loss(p, x):
        carry, ys = jaxrnn.scan(cell, p, x[:4])
        return jnp.sum(ys**2) + sum(jnp.sum(c) for c in jax.tree_util.tree_leaves(carry))

    check_grads(loss, (params, xs), order=1, modes=("rev",), eps=1e-5, atol=1e-8, rtol=1e-7)


def test_forward_mode_through_a_sequence_layer(full_case):
    _, case = full_case
    cell, lp, xs = _setup(case)
    layer = jaxrnn.recurrent(cell)

    def f(x):
        return layer.apply(lp, x, length=4)[1]

    tangent = random_inputs(jax.random.key(4), T, xs.shape[1])

    @jax.jit  # one compilation for the three
    def derivatives(x, v):
        return jax.jvp(f, (x,), (v,))[1], jax.jacrev(f)(x), jax.jacfwd(f)(x)

    jvp_out, jac, jac_fwd = derivatives(xs, tangent)  # jac: (T, O, T, I)
    np.testing.assert_allclose(
        jvp_out, jnp.einsum("toki,ki->to", jac, tangent), rtol=1e-10, atol=1e-12
    )
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
        (jaxrnn.peephole_lstm, {"input_size": 0, "hidden_size": 3}, "input_size"),
        (
            jaxrnn.peephole_lstm,
            {"input_size": 2, "hidden_size": 3, "output_activation": "relu"},
            "output_activation",
        ),
        (jaxrnn.peephole_lstm, {"input_size": 2, "hidden_size": 3, "proj_size": 4}, "proj_size"),
        (
            jaxrnn.cifg_lstm,
            {"input_size": 2, "hidden_size": 3, "bias": False, "forget_bias": 1.0},
            "forget_bias",
        ),
        (jaxrnn.lstm_no_forget, {"input_size": 2, "hidden_size": 0}, "hidden_size"),
        (
            jaxrnn.lstm_no_forget,
            {"input_size": 2, "hidden_size": 3, "bias": False, "input_bias": -1.0},
            "input_bias",
        ),
        (jaxrnn.cho_gru, {"input_size": 2, "hidden_size": 0}, "hidden_size"),
        (jaxrnn.mgu, {"input_size": 2.5, "hidden_size": 3}, "input_size"),
        (jaxrnn.layer_norm_lstm, {"input_size": 2, "hidden_size": 3, "eps": 0.0}, "eps"),
        (
            jaxrnn.clockwork_rnn,
            {"input_size": 2, "hidden_size": 5, "num_modules": 2},
            "hidden_size",
        ),
        (
            jaxrnn.clockwork_rnn,
            {"input_size": 2, "hidden_size": 4, "num_modules": 0},
            "num_modules",
        ),
        (jaxrnn.clockwork_rnn, {"input_size": 2, "hidden_size": 4, "periods": (2, 1)}, "periods"),
        (jaxrnn.clockwork_rnn, {"input_size": 2, "hidden_size": 4, "periods": (1, 0)}, "periods"),
        (
            jaxrnn.child_sum_tree_lstm,
            {"input_size": 2, "hidden_size": 3, "max_nodes": 0},
            "max_nodes",
        ),
    ],
)
def test_bad_factory_arguments_raise(factory, kwargs, match):
    with pytest.raises(ValueError, match=match):
        factory(**kwargs)
