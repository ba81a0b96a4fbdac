"""Truncated/checkpointed BPTT and the approximations: SnAp-1, UORO, RFLO, run on every
registered cell each supports (the representative case of each family).

References: Python loops of ``jax.grad`` over windows (TBPTT), plain BPTT
(checkpointing), SnAp-1's dense definition and exact RTRL (SnAp-1 reductions), the
mean of many UORO draws (unbiasedness), TBPTT(1) (RFLO at alpha = 1) and a NumPy
transcription of Murray's RFLO update."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import CELL_CASES, FULL_CASES
from gradhelpers import case_problem

import jaxrnn
from jaxrnn import grad as G
from jaxrnn.grad._common import flat_cell, initial_influence, probe_pattern

I, H, OUT = 2, 4, 2


def mse_loss(head, y, target):
    W, b = head
    return 0.5 * jnp.sum((W @ y + b - target) ** 2)


def _problem(cell, T, seed=0):
    k1, k2, k3, k4 = jax.random.split(jax.random.key(seed), 4)
    cp = cell.init(k1)
    head = (jax.random.normal(k2, (OUT, cell.output_size), jnp.float64), jnp.zeros(OUT))
    xs = jax.random.normal(k3, (T, cell.input_size), jnp.float64)
    targets = jax.random.normal(k4, (T, OUT), jnp.float64)
    return (cp, head), xs, targets


def _rel(a, b):
    return float(G.relative_error(a, b))


ELMAN = jaxrnn.rnn(I, H, dtype=jnp.float64)
T = 9
# built once so that tests share compilations (same cell, same shapes)
BPTT = G.bptt(ELMAN, mse_loss)
SNAP1 = G.snap1(ELMAN, mse_loss)
UORO = G.uoro(ELMAN, mse_loss)


# ------------------------------------------- every method on every cell it supports


def _tbptt_reference(cell, params, xs, targets, k):
    """A Python loop of ``step`` whose carry is cut (``stop_gradient``) every ``k`` steps,
    differentiated by ``jax.grad``: the gradient of each window's loss from a constant
    carry (the first window also reaches a parameter-dependent initial carry)."""

    def loss(p):
        c = cell.initial_carry(p[0])
        total = 0.0
        for t in range(xs.shape[0]):
            if t and t % k == 0:
                c = jax.lax.stop_gradient(c)
            c, y = cell.step(p[0], c, xs[t])
            total = total + mse_loss(p[1], y, targets[t])
        return total

    return jax.value_and_grad(loss)(params)  # eager: cheaper than compiling, for T = 7


def _snap1_reference(cell, params, xs, targets):
    """SnAp-1 by its definition (Menick et al. 2021), dense: ``M_t = mask * (D_t M_{t-1} +
    I_t)`` with full Jacobians, ``mask`` the structural pattern of ``I`` (from the same
    probe as the engine: which carry entries each parameter reaches in one step), and
    the gradient ``delta_t M_t`` (output in the carry) or ``g_imm + g_c M_{t-1}``."""
    cp, head = params
    carry0 = cell.initial_carry(cp)
    fc, theta, c = flat_cell(cell, cp, carry0)
    pat = probe_pattern(cell, fc, theta, c, xs[0])
    mask = np.zeros((fc.S, fc.P), bool)
    for k in range(pat.K):
        cols = np.flatnonzero(pat.valid[k])
        mask[pat.units[k, cols], cols] = True
    M = mask * np.asarray(initial_influence(cell, fc, theta))

    @jax.jit
    def jacobians(c, x, tgt):  # everything one step needs, dense
        (c_new, y), vjp = jax.vjp(lambda th, cc: fc.f(th, cc, x), theta, c)
        l_t, (gh, g_y) = jax.value_and_grad(mse_loss, argnums=(0, 1))(head, y, tgt)
        g_imm, g_c = vjp((jnp.zeros_like(c_new), g_y))
        I_t = jax.jacrev(lambda th: fc.f(th, c, x)[0])(theta)
        D_t = jax.jacfwd(lambda cc: fc.f(theta, cc, x)[0])(c)
        return c_new, l_t, gh, g_y, g_imm, g_c, I_t, D_t

    g_cell, g_head, loss = np.zeros(fc.P), None, 0.0
    for x, tgt in zip(xs, targets):
        c_new, l_t, gh, g_y, g_imm, g_c, I_t, D_t = jacobians(c, x, tgt)
        M_new = mask * (np.asarray(D_t) @ M + np.asarray(I_t))
        if pat.out_idx is not None:
            delta = np.zeros(fc.S)
            np.add.at(delta, pat.out_idx, np.asarray(g_y).reshape(-1))
            g_cell = g_cell + delta @ M_new
        else:
            g_cell = g_cell + np.asarray(g_imm) + np.asarray(g_c) @ M
        g_head = gh if g_head is None else jax.tree_util.tree_map(jnp.add, g_head, gh)
        loss, M, c = loss + float(l_t), M_new, c_new
    return loss, (fc.unravel_params(jnp.asarray(g_cell)), g_head)


METHODS = ["checkpoint", "tbptt", "snap1", "uoro", "rflo"]
# Which representative cases (FULL_CASES, conftest.py) each method runs on, chosen by
# what the method depends on, to keep CI inside its time budget:
# - RFLO: whether the cell is Elman-type: every case (the `elman` capability is checked).
# - SnAp-1: the sparsity of the influence: one case per kind (K = 1 gated, element-wise,
#   (h, c) carry with K = 2, dense one-step Jacobian, counter in the carry, learned c_0,
#   key in the carry; rnn_tanh has test_snap1_* below). Not the Tree-LSTM: the engine's
#   pattern probe draws carries from N(0, 1), which never reach its node slots >= 3.
# - checkpointed BPTT, TBPTT, UORO: nothing but the carry pytree and the initial state:
#   the three cases whose carry or initial state differ in kind (a node buffer with
#   structured inputs, a key in the carry, a learned c_0).
GENERIC = {"tree_lstm", "zoneout_lstm", "learned_initial_state_lstm"}
RUNS_ON = {
    "checkpoint": GENERIC,
    "tbptt": GENERIC,
    "uoro": GENERIC,
    "snap1": {
        "gru",
        "indrnn",
        "lstm",
        "cho_gru",
        "clockwork_rnn",
        "learned_initial_state_lstm",
        "zoneout_lstm",
    },
    "rflo": set(FULL_CASES),
}
SUPPORTED = [(n, m) for m in METHODS for n in sorted(RUNS_ON[m])]


@pytest.mark.parametrize(("name", "method"), SUPPORTED)
def test_every_gradient_method_on_every_cell_it_supports(name, method):
    """Checkpointed BPTT == BPTT; TBPTT(3) == a loop of windowed jax.grad; SnAp-1 == its
    dense definition; UORO's loss is the true loss and its gradient is exact for one
    step; RFLO(alpha=1) == TBPTT(1) on Elman-type cells, which it alone accepts.

    The references run eagerly and BPTT is the one the RTRL test compiled (same T), so
    each item compiles only the method under test."""
    case = CELL_CASES[name]
    cell, bptt, _, params, xs, targets = case_problem(name)
    if method == "checkpoint":  # segments of 4, the last one padded
        out = G.bptt(cell, mse_loss, checkpoint=4)(params, xs, targets)
        ref = bptt(params, xs, targets)
        np.testing.assert_allclose(out[0], ref[0], rtol=1e-13)
        assert _rel(out[1], ref[1]) < 1e-12
    elif method == "tbptt":
        loss, grads = G.tbptt(cell, mse_loss, 3)(params, xs, targets)
        ref_loss, ref = _tbptt_reference(cell, params, xs, targets, 3)
        np.testing.assert_allclose(loss, ref_loss, rtol=1e-12)
        assert _rel(grads, ref) < 1e-12
        assert _rel(grads, bptt(params, xs, targets)[1]) > 1e-6  # truncated: not BPTT
    elif method == "snap1":
        out = G.snap1(cell, mse_loss)(params, xs, targets)
        ref = _snap1_reference(cell, params, xs, targets)
        np.testing.assert_allclose(out[0], ref[0], rtol=1e-12)
        assert _rel(out[1], ref[1]) < 1e-10
    elif method == "uoro":
        # c0 given, so no initial influence (a learned c0 makes UORO random at T = 1);
        # one step is the mask [1, 0, ...], so both calls share one compilation
        uoro = G.uoro(cell, mse_loss)
        c0 = cell.initial_carry(params[0])
        T = xs.shape[0]
        loss, _ = uoro(params, xs, targets, c0, mask=jnp.ones(T, bool), key=jax.random.key(3))
        np.testing.assert_allclose(loss, bptt(params, xs, targets)[0], rtol=1e-12)
        _, one = uoro(params, xs, targets, c0, mask=jnp.arange(T) < 1, key=jax.random.key(4))
        exact = jax.grad(lambda p: mse_loss(p[1], cell.step(p[0], c0, xs[0])[1], targets[0]))
        assert _rel(one, exact(params)) < 1e-12
    else:
        rflo = G.rflo(cell, mse_loss, alpha=1.0)
        if case.elman:
            loss, grads = rflo(params, xs, targets)
            ref_loss, ref = _tbptt_reference(cell, params, xs, targets, 1)
            np.testing.assert_allclose(loss, ref_loss, rtol=1e-12)
            assert _rel(grads, ref) < 1e-12
        else:
            with pytest.raises(ValueError, match="Elman-type"):
                rflo(params, xs, targets)


def test_checkpointed_bptt_with_a_mask_equals_bptt():
    params, xs, targets = _problem(ELMAN, T=T)  # segments of 3 (checkpoint=True)
    mask = jnp.arange(T) < 8
    out = G.bptt(ELMAN, mse_loss, checkpoint=True)(params, xs, targets, mask=mask)
    ref = BPTT(params, xs, targets, mask=mask)
    np.testing.assert_allclose(out[0], ref[0], rtol=1e-13)
    assert _rel(out[1], ref[1]) < 1e-12


def test_tbptt_with_window_T_is_bptt():
    params, xs, targets = _problem(ELMAN, T=T)
    mask = jnp.arange(T) < 6
    out = G.tbptt(ELMAN, mse_loss, T)(params, xs, targets, mask=mask)
    ref = BPTT(params, xs, targets, mask=mask)
    assert _rel(out[1], ref[1]) < 1e-12


# ------------------------------------------------------------------------------- SnAp-1


def test_snap1_equals_rtrl_when_the_recurrent_matrix_is_diagonal():
    params, xs, targets = _problem(ELMAN, T=T)
    cp = params[0]._replace(w_hh=jnp.diag(jnp.diag(params[0].w_hh) * 3))
    params = (cp, params[1])
    snap = SNAP1(params, xs, targets)
    exact = G.rtrl(ELMAN, mse_loss)(params, xs, targets)
    np.testing.assert_allclose(snap[0], exact[0], rtol=1e-13)
    assert _rel(snap[1], exact[1]) < 1e-10


def test_snap1_is_biased_on_a_dense_cell_but_aligned():
    params, xs, targets = _problem(ELMAN, T=T)
    snap = SNAP1(params, xs, targets)[1]
    exact = BPTT(params, xs, targets)[1]
    assert 1e-3 < _rel(snap, exact) < 0.5
    assert float(G.cosine(snap, exact)) > 0.9
    assert _rel(snap[1], exact[1]) < 1e-12  # the readout gradient is exact


# --------------------------------------------------------------------------------- UORO


def test_uoro_is_unbiased():
    """Mean of N draws -> true gradient as 1/sqrt(N); the cosine rises with N."""
    params, xs, targets = _problem(ELMAN, T=T, seed=1)
    exact = BPTT(params, xs, targets)[1][0]
    keys = jax.random.split(jax.random.key(0), 6400)
    draws = jax.vmap(lambda k: UORO(params, xs, targets, key=k)[1][0])(keys)
    flat = jax.vmap(lambda g: jax.flatten_util.ravel_pytree(g)[0])(draws)
    ref = jax.flatten_util.ravel_pytree(exact)[0]

    def stats(n):  # error and cosine of the mean of n draws, averaged over 6400/n groups
        means = flat.reshape(-1, n, flat.shape[-1]).mean(1)
        err = jnp.linalg.norm(means - ref, axis=1) / jnp.linalg.norm(ref)
        cos = means @ ref / (jnp.linalg.norm(means, axis=1) * jnp.linalg.norm(ref))
        return float(err.mean()), float(cos.mean())

    (e1, c1), (e100, c100), (e1600, c1600) = stats(1), stats(100), stats(1600)
    assert c1 < c100 < c1600
    assert c1600 > 0.9
    # 1/sqrt(N) scaling: expected ratio 1/4 from 100 to 1600 draws
    assert 0.15 < e1600 / e100 < 0.4
    assert e100 < 0.3 * e1


# --------------------------------------------------------------------------------- RFLO


def test_rflo_matches_murray_update_in_numpy():
    """B_t = (1-a) B_{t-1} + phi'(a_t) [x_t; h_{t-1}; 1]^T,  grad_t = delta_t * B_t."""
    alpha = 0.4
    params, xs, targets = _problem(ELMAN, T=T)
    (p, (V, c)) = params
    Wi, Wh, b = (np.asarray(a) for a in (p.w_ih, p.w_hh, p.b_ih + p.b_hh))
    V, c = np.asarray(V), np.asarray(c)
    Bi, Bh, Bb = np.zeros_like(Wi), np.zeros_like(Wh), np.zeros(H)
    gi, gh, gb = np.zeros_like(Wi), np.zeros_like(Wh), np.zeros(H)
    h = np.zeros(H)
    for x, y in zip(np.asarray(xs), np.asarray(targets)):
        h_new = np.tanh(Wi @ x + Wh @ h + b)
        d = 1 - h_new**2
        Bi = (1 - alpha) * Bi + np.outer(d, x)
        Bh = (1 - alpha) * Bh + np.outer(d, h)
        Bb = (1 - alpha) * Bb + d
        delta = (V @ h_new + c - y) @ V
        gi, gh, gb = gi + delta[:, None] * Bi, gh + delta[:, None] * Bh, gb + delta * Bb
        h = h_new
    out = G.rflo(ELMAN, mse_loss, alpha=alpha)(params, xs, targets)[1][0]
    np.testing.assert_allclose(out.w_ih, gi, rtol=1e-12)
    np.testing.assert_allclose(out.w_hh, gh, rtol=1e-12)
    np.testing.assert_allclose(out.b_ih, gb, rtol=1e-12)
    np.testing.assert_allclose(out.b_hh, gb, rtol=1e-12)


def test_rflo_treats_the_initial_carry_as_a_constant():
    """With a learned c_0, RFLO(1) equals TBPTT(1) on the cell's own parameters and gives
    c_0 no gradient, while TBPTT(1) differentiates c_0 in its first window (README)."""
    from gradhelpers import mse_loss, problem

    cell = jaxrnn.learned_initial_state(jaxrnn.rnn(3, 4, dtype=jnp.float64))
    params, xs, targets = problem(cell, T=5)
    params = (params[0]._replace(carry0=params[0].carry0 + 0.5), params[1])
    loss_r, g_r = G.rflo(cell, mse_loss, alpha=1.0)(params, xs, targets)
    loss_t, g_t = G.tbptt(cell, mse_loss, 1)(params, xs, targets)
    np.testing.assert_allclose(loss_r, loss_t, rtol=1e-13)
    np.testing.assert_array_equal(g_r[0].carry0, 0.0)
    assert float(jnp.max(jnp.abs(g_t[0].carry0))) > 1e-3
    for a, b in zip(jax.tree.leaves((g_r[0].cell, g_r[1])), jax.tree.leaves((g_t[0].cell, g_t[1]))):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_output_found_in_the_carry_up_to_rounding():
    """An output computed a second time, with its own rounding, is still found in the
    carry (``probe_pattern.out_idx``), so RFLO accepts the cell and equals RFLO on the
    plain cell to rounding. (XLA may round two copies of one value differently.)"""
    from gradhelpers import mse_loss, problem

    plain = jaxrnn.rnn(3, 4, dtype=jnp.float64)

    def step(p, c, x):  # y = (h * s) / s: h up to an ulp (s from the data: not folded)
        c, h = plain.step(p, c, x)
        s = 1.0 + x[0] ** 2
        return c, (h * s) / s

    cell = jaxrnn.Cell(plain.init, plain.initial_carry, step, input_size=3, output_size=4)
    params, xs, targets = problem(cell, T=5)
    fc, theta, c = flat_cell(cell, params[0], cell.initial_carry(params[0]))
    many = jax.random.normal(jax.random.key(3), (32, 3), jnp.float64)
    c_new, y = jax.jit(jax.vmap(fc.f, (None, None, 0)))(theta, c, many)
    assert not np.array_equal(c_new, y)  # the rounding really differs (XLA keeps it)
    np.testing.assert_array_equal(probe_pattern(cell, fc, theta, c, xs[0]).out_idx, np.arange(4))
    loss, g = G.rflo(cell, mse_loss, alpha=0.5)(params, xs, targets)
    loss_p, g_p = G.rflo(plain, mse_loss, alpha=0.5)(params, xs, targets)
    np.testing.assert_allclose(loss, loss_p, rtol=1e-14)
    for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_p)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
