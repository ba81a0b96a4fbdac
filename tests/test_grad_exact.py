"""Exact gradients: RTRL == BPTT == jax.jacfwd, for every registered cell, a stacked cell,
a user-defined cell (output not in the carry, learned initial state) and masks; the
element-wise fast path; the seed-002 backward recursion; bad input."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import CELL_CASES, INPUT_SIZE
from gradhelpers import OUT, T, case_problem, mse_loss, problem
from gradhelpers import fns as _fns
from gradhelpers import rel as _rel

import jaxrnn
from jaxrnn import grad as G


def fns(name, dtype=jnp.float64):
    return _fns(name, dtype, USER_CELLS.get(name))


def _problem(cell, dtype=jnp.float64, T=T, seed=0):
    return problem(cell, dtype, T, seed)


def _assert_same(out, ref, tol):
    (loss, grads), (loss_r, grads_r) = out, ref
    np.testing.assert_allclose(loss, loss_r, rtol=tol)
    assert _rel(grads[0], grads_r[0]) < tol
    assert _rel(grads[1], grads_r[1]) < tol


# ------------------------------------------------------------- RTRL == BPTT, all cells


def test_rtrl_equals_bptt_every_cell(cell_case):
    name, _ = cell_case
    _, bptt, rtrl, params, xs, targets = case_problem(name)
    ref = bptt(params, xs, targets)
    out = rtrl(params, xs, targets)
    _assert_same(out, ref, 1e-10)
    # the gradient is not trivially zero
    assert float(jnp.linalg.norm(jax.flatten_util.ravel_pytree(ref[1][0])[0])) > 1e-3


def test_rtrl_equals_bptt_float32():
    cell, bptt, rtrl = fns("gru", jnp.float32)
    params, xs, targets = _problem(cell, jnp.float32, T=25)
    ref = bptt(params, xs, targets)
    out = rtrl(params, xs, targets)
    assert out[0].dtype == jnp.float32
    _assert_same(out, ref, 1e-5)


def test_jacfwd_of_the_whole_loss_is_a_third_oracle():
    """Forward mode through the whole scan (``jax.jacfwd``) == RTRL == BPTT."""
    cell, bptt, rtrl = fns("lstm_proj")
    params, xs, targets = _problem(cell)
    mask = jnp.arange(T) < 5
    oracle = jax.jit(
        jax.jacfwd(lambda p: G.sequence_loss(cell, mse_loss, p, xs, targets, mask=mask))
    )(params)
    assert _rel(rtrl(params, xs, targets, mask=mask)[1], oracle) < 1e-10
    assert _rel(bptt(params, xs, targets, mask=mask)[1], oracle) < 1e-10


def test_stacked_cell_rtrl_equals_bptt():
    cell = jaxrnn.cells.stack_cells(
        jaxrnn.gru(INPUT_SIZE, 4, dtype=jnp.float64), jaxrnn.rnn(4, 3, dtype=jnp.float64)
    )
    params, xs, targets = _problem(cell)
    carry0 = jax.tree_util.tree_map(lambda a: a + 0.3, cell.initial_carry(params[0]))
    ref = G.bptt(cell, mse_loss)(params, xs, targets, carry0)
    out = G.rtrl(cell, mse_loss)(params, xs, targets, carry0)
    _assert_same(out, ref, 1e-10)


# ------------------------------------------------- a user-defined cell, protocol only


class UserParams(NamedTuple):
    w: jax.Array  # (H, I + H)
    v: jax.Array  # (O, H): output map inside the cell, so y is not part of the carry
    h0: jax.Array  # (H,) learned initial state
    leak: jax.Array  # () learned leak


def user_cell(I=3, H=4, O=3):
    """A leaky cell with a dict carry, a learned h0, and an output that is not the carry."""

    def init(key):
        k1, k2, k3 = jax.random.split(key, 3)
        return UserParams(
            jax.random.normal(k1, (H, I + H), jnp.float64) / 2,
            jax.random.normal(k2, (O, H), jnp.float64),
            jax.random.normal(k3, (H,), jnp.float64),
            jnp.asarray(0.3, jnp.float64),
        )

    def initial_carry(p):
        return {"h": jnp.tanh(p.h0), "s": jnp.zeros((), jnp.float64)}

    def step(p, carry, x):
        h = carry["h"]
        a = jnp.tanh(p.w @ jnp.concatenate([x, h]))
        lam = jax.nn.sigmoid(p.leak)
        h = (1 - lam) * h + lam * a
        y = jnp.sin(p.v @ h) + carry["s"]
        return {"h": h, "s": 0.5 * carry["s"] + jnp.sum(h)}, y

    # no input_size/output_size declared: only the protocol's three functions
    return jaxrnn.Cell(init, initial_carry, step)


USER_CELLS = {"user": user_cell}


def test_user_defined_cell_with_learned_initial_state():
    cell, bptt, rtrl = fns("user")
    params, xs, targets = _problem(cell)
    ref = bptt(params, xs, targets)
    out = rtrl(params, xs, targets)
    _assert_same(out, ref, 1e-10)
    assert float(jnp.abs(ref[1][0].h0).max()) > 1e-4  # the initial state is learned


@pytest.mark.parametrize("kind", ["prefix", "holes"])
def test_masks_rtrl_equals_bptt_and_variable_length(kind):
    cell, bptt, rtrl = fns("user")
    params, xs, targets = _problem(cell)
    if kind == "prefix":
        mask = jnp.arange(T) < 4
    else:
        mask = jnp.asarray([1, 0, 1, 0, 0, 1, 1], bool)
    ref = bptt(params, xs, targets, mask=mask)
    out = rtrl(params, xs, targets, mask=mask)
    _assert_same(out, ref, 1e-10)
    # independent reference: the masked steps removed from the sequence
    keep = np.flatnonzero(np.asarray(mask))
    short = bptt(params, xs[keep], targets[keep])
    _assert_same(out, short, 1e-12)


def test_batched_by_vmap():
    cell, bptt, rtrl = fns("rnn_tanh")
    params, _, _ = _problem(cell)
    xs = jax.random.normal(jax.random.key(7), (3, T, INPUT_SIZE), jnp.float64)
    tg = jax.random.normal(jax.random.key(8), (3, T, OUT), jnp.float64)
    lengths = jnp.asarray([T, 4, 2])
    masks = jnp.arange(T)[None, :] < lengths[:, None]

    def batched(fn):
        return jax.vmap(lambda x, t, m: fn(params, x, t, mask=m))(xs, tg, masks)

    ref = batched(bptt)
    out = batched(rtrl)
    np.testing.assert_allclose(out[0], ref[0], rtol=1e-12)
    assert _rel(out[1], ref[1]) < 1e-10


# ---------------------------------------------------------------- element-wise path


def test_diagonal_fast_path_equals_dense_rtrl_and_bptt():
    cell, bptt, rtrl = fns("indrnn")
    assert cell.diagonal
    params, xs, targets = _problem(cell, seed=3)
    G.check_diagonal(cell, params[0], jax.random.key(1))
    ref = bptt(params, xs, targets)
    fast = rtrl(params, xs, targets)  # the element-wise path (cell.diagonal)
    dense = G.rtrl(cell, mse_loss, diagonal=False)(params, xs, targets)
    _assert_same(fast, ref, 1e-10)
    _assert_same(dense, ref, 1e-10)


def test_diagonal_declarations_are_true(cell_case):
    """A cell declares ``diagonal=True`` exactly when the registry says it is element-wise,
    and ``check_diagonal`` confirms every such declaration (declaring a cell dense is
    always safe; that dense cells fail the check is the next test)."""
    _, case = cell_case
    cell = case(jnp.float64)
    assert cell.diagonal == case.diagonal
    if case.diagonal:
        G.check_diagonal(cell, cell.init(jax.random.key(0)), jax.random.key(1))


def test_check_diagonal_rejects_dense_cells():
    for name in ("gru", "rnn_tanh", "lstm", "clockwork_rnn"):
        cell = CELL_CASES[name](jnp.float64)
        with pytest.raises(ValueError, match="not element-wise"):
            G.check_diagonal(cell, cell.init(jax.random.key(0)), jax.random.key(1), draws=1)


def test_false_diagonal_declaration_is_caught_when_traced():
    gru = CELL_CASES["gru"](jnp.float64)
    lying = gru._replace(diagonal=True)
    params, xs, targets = _problem(lying)
    with pytest.raises(ValueError, match="diagonal=True but is not element-wise"):
        G.rtrl(lying, mse_loss)(params, xs, targets)


def test_block_diagonal_path_for_the_complex_lru():
    """The LRU's complex state as (re, im): units of 2 carry entries (``diagonal=2``).
    The compressed path (2 JVPs and 2 VJPs per step) == dense RTRL == BPTT (float64,
    1e-10); a GRU declared ``diagonal=2`` is refused when traced and by check_diagonal."""
    cell, bptt, rtrl = fns("lru")
    assert cell.diagonal == 2
    params, xs, targets = _problem(cell, seed=3)
    ref = bptt(params, xs, targets)
    _assert_same(rtrl(params, xs, targets), ref, 1e-10)
    _assert_same(G.rtrl(cell, mse_loss, diagonal=False)(params, xs, targets), ref, 1e-10)
    lying = CELL_CASES["gru"](jnp.float64)._replace(diagonal=2)
    params, xs, targets = _problem(lying)
    with pytest.raises(ValueError, match="diagonal=2 but its carry is not block-diagonal"):
        G.rtrl(lying, mse_loss)(params, xs, targets)
    with pytest.raises(ValueError, match="not block-diagonal with units of 2"):
        G.check_diagonal(lying, params[0], jax.random.key(1), draws=1)


def _layerwise_reference(stack, sizes, params, xs, targets):
    """Dense RTRL of the stack with the cross-layer blocks of D_t and I_t zeroed (each
    layer's own influence only), in a Python loop; ``sizes`` = [(P_l, S_l)]."""
    from jax.flatten_util import ravel_pytree

    theta, unravel = ravel_pytree(params[0])
    c, unravel_c = ravel_pytree(stack.initial_carry(params[0]))
    lp = np.concatenate([np.full(P, k) for k, (P, _) in enumerate(sizes)])
    ls = np.concatenate([np.full(S, k) for k, (_, S) in enumerate(sizes)])
    mask_D, mask_I = ls[:, None] == ls[None, :], ls[:, None] == lp[None, :]

    def f(th, cc, x):
        new, y = stack.step(unravel(th), unravel_c(cc), x)
        return ravel_pytree(new)[0], y

    @jax.jit  # compiled once, called T times (eager jacobians cost seconds per step)
    def jacobians(c, x, tgt):
        D = jax.jacfwd(lambda cc: f(theta, cc, x)[0])(c)
        I = jax.jacrev(lambda th: f(th, c, x)[0])(theta)
        g_imm, g_c = jax.grad(
            lambda th, cc: mse_loss(params[1], f(th, cc, x)[1], tgt), argnums=(0, 1)
        )(theta, c)
        return D, I, g_imm, g_c, f(theta, c, x)[0]  # and the next carry (no eager step)

    M = np.zeros((c.size, theta.size))
    g = np.zeros(theta.size)
    for t in range(xs.shape[0]):
        D, I, g_imm, g_c, c = jacobians(c, xs[t], targets[t])
        D, I = np.asarray(D) * mask_D, np.asarray(I) * mask_I  # each layer's own blocks
        g = g + np.asarray(g_imm) + np.asarray(g_c) @ M
        M = D @ M + I
    return unravel(jnp.asarray(g))


def test_layerwise_rule_of_zucchet_et_al():
    """Exact RTRL within each layer, spatial backpropagation between layers: one layer ==
    BPTT; two layers == dense RTRL with the cross-layer influence zeroed (float64, 1e-10),
    and not BPTT."""
    one, grad_one = G.layerwise(
        [jaxrnn.lru(INPUT_SIZE, 3, output_size=2, dtype=jnp.float64)], mse_loss
    )
    params, xs, targets = _problem(one, seed=2)
    _assert_same(grad_one(params, xs, targets), G.bptt(one, mse_loss)(params, xs, targets), 1e-10)
    cells = [jaxrnn.min_gru(INPUT_SIZE, 3, dtype=jnp.float64), jaxrnn.lru(3, 2, dtype=jnp.float64)]
    stack, grad_fn = G.layerwise(cells, mse_loss)
    params, xs, targets = _problem(stack, seed=1, T=5)
    loss, (g, _) = grad_fn(params, xs, targets)
    ref_loss, (g_bptt, _) = G.bptt(stack, mse_loss)(params, xs, targets)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-12)
    sizes = [(jaxrnn.count_params(c), 2 * 2 if c.diagonal == 2 else 3) for c in cells]
    assert _rel(g, _layerwise_reference(stack, sizes, params, xs, targets)) < 1e-10
    assert _rel(g, g_bptt) > 1e-4  # an approximation with more than one layer
    with pytest.raises(ValueError, match="element-wise"):
        G.layerwise([jaxrnn.gru(INPUT_SIZE, 3)], mse_loss)


# ---------------------------------------------------- seed 002: the hand derivation


def test_hidden_grad_norms_match_seed_002_backward_recursion():
    """dL/dh_T = dL_T/dh_T;  dL/dh_t = dL_t/dh_t + dL/dh_{t+1} diag(1 - h_{t+1}^2) W."""
    cell, _, rtrl = fns("rnn_tanh")
    params, xs, targets = _problem(cell)
    (p, (V, c)) = params
    W, U, b = np.asarray(p.w_hh), np.asarray(p.w_ih), np.asarray(p.b_ih + p.b_hh)
    V, c, xs_n, ys_n = np.asarray(V), np.asarray(c), np.asarray(xs), np.asarray(targets)
    hs, h = [], np.zeros(W.shape[0])
    for t in range(T):
        h = np.tanh(b + W @ h + U @ xs_n[t])
        hs.append(h)
    dLdo = [V @ h + c - y for h, y in zip(hs, ys_n)]
    g = [None] * T
    g[T - 1] = dLdo[T - 1] @ V
    for t in range(T - 2, -1, -1):
        g[t] = dLdo[t] @ V + g[t + 1] @ np.diag(1 - hs[t + 1] ** 2) @ W
    # the gradient sent into step t through h_{t-1}: dL/dh_t diag(1 - h_t^2) W
    ref = np.array([np.linalg.norm(g[t] @ np.diag(1 - hs[t] ** 2) @ W) for t in range(T)])
    out = G.hidden_grad_norms(cell, mse_loss, params, xs, targets)
    np.testing.assert_allclose(out, ref, rtol=1e-12)
    # and the seed's parameter gradient dL/dW = sum_t diag(1-h_t^2) dL/dh_t^T h_{t-1}^T
    dW = sum(
        np.outer((1 - hs[t] ** 2) * g[t], hs[t - 1] if t else np.zeros_like(h)) for t in range(T)
    )
    rt = rtrl(params, xs, targets)[1][0].w_hh
    np.testing.assert_allclose(rt, dW, rtol=1e-10, atol=1e-13)


def test_hidden_grad_norms_vanish_with_small_recurrent_weights():
    """Seeds 000-002: with contracting dynamics the gradient of a loss on the last step
    decays geometrically backwards: each step shrinks it by at most ||W||_2."""
    cell, _, _ = fns("rnn_tanh")
    params, xs, targets = _problem(cell)
    cp = params[0]._replace(w_hh=0.1 * params[0].w_hh)
    weight = (jnp.arange(T) == T - 1).astype(xs.dtype)[:, None]  # loss on the last step

    def last_only(head, y, tg):
        return tg[0] * mse_loss(head, y, tg[1:])

    tg = jnp.concatenate([weight, targets], axis=1)
    norms = np.asarray(G.hidden_grad_norms(cell, last_only, (cp, params[1]), xs, tg))
    bound = np.linalg.norm(np.asarray(cp.w_hh), 2)
    assert norms[-1] > 0
    assert np.all(norms[:-1] <= bound * norms[1:] * (1 + 1e-12))
    assert norms[0] < 1e-3 * norms[-1]


def test_cosine_and_relative_error():
    a = {"x": jnp.asarray([1.0, 0.0]), "y": jnp.asarray([0.0])}
    b = {"x": jnp.asarray([1.0, 1.0]), "y": jnp.asarray([0.0])}
    np.testing.assert_allclose(G.cosine(a, b), 1 / np.sqrt(2), rtol=1e-14)
    np.testing.assert_allclose(G.relative_error(a, b), 1 / np.sqrt(2), rtol=1e-14)


# ---------------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def rnn_problem():
    cell = fns("rnn_tanh")[0]
    return (cell, *_problem(cell))


@pytest.mark.parametrize(
    "method",
    [
        lambda c: G.bptt(c, mse_loss),
        lambda c: G.tbptt(c, mse_loss, 2),
        lambda c: G.rtrl(c, mse_loss),
        lambda c: G.snap1(c, mse_loss),
        lambda c: G.rflo(c, mse_loss),
    ],
    ids=["bptt", "tbptt", "rtrl", "snap1", "rflo"],
)
def test_bad_input_raises_before_tracing(rnn_problem, method):
    cell, params, xs, targets = rnn_problem
    fn = method(cell)
    with pytest.raises(ValueError, match=r"targets must have leading axis T=7"):
        fn(params, xs, targets[:5])
    with pytest.raises(ValueError, match="carry0 must have the structure"):
        fn(params, xs, targets, (jnp.zeros(5), jnp.zeros(5)))
    with pytest.raises(ValueError, match=r"carry0 must have shape \(5,\), got \(4,\)"):
        fn(params, xs, targets, jnp.zeros(4))
    with pytest.raises(ValueError, match=r"xs must have shape \(T, 3\)"):
        fn(params, xs[:, :2], targets)
    with pytest.raises(ValueError, match=r"params must be a pair"):
        fn(params[0], xs, targets)
    with pytest.raises(ValueError, match=r"mask must have shape \(7,\)"):
        fn(params, xs, targets, mask=jnp.ones(6, bool))


def test_bad_options_raise():
    cell = CELL_CASES["rnn_tanh"](jnp.float64)
    for k in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="k must be a positive integer"):
            G.tbptt(cell, mse_loss, k)
    with pytest.raises(ValueError, match="checkpoint must be a positive integer"):
        G.bptt(cell, mse_loss, checkpoint=0)
    with pytest.raises(ValueError, match="alpha must be a number in"):
        G.rflo(cell, mse_loss, alpha=0.0)
    params, xs, targets = _problem(cell)
    with pytest.raises(ValueError, match="pass key"):
        G.uoro(cell, mse_loss)(params, xs, targets)
    lstm = CELL_CASES["lstm"](jnp.float64)
    with pytest.raises(ValueError, match="Elman-type"):
        G.rflo(lstm, mse_loss)(*_problem(lstm))
