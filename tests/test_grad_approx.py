"""Truncated/checkpointed BPTT and the approximations: SnAp-1, UORO, RFLO.

References: Python loops of ``jax.grad`` over windows (TBPTT), plain BPTT
(checkpointing), exact RTRL (SnAp-1 reductions), the mean of many UORO draws
(unbiasedness), a NumPy transcription of Murray's RFLO update."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn
from jaxrnn import grad as G

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


# ------------------------------------------------------------------- TBPTT, checkpoint


def _tbptt_reference(cell, params, xs, targets, k):
    """Python loop over windows: jax.grad of each window's loss from a constant carry."""

    @jax.jit
    def window_grad(p, c, xw, tw):
        def window(p, c):
            c, ys = jaxrnn.scan(cell, p[0], xw, c)
            return sum(mse_loss(p[1], y, t) for y, t in zip(ys, tw)), c

        return jax.grad(window, has_aux=True)(p, c)

    carry = cell.initial_carry(params[0])
    total = jax.tree_util.tree_map(jnp.zeros_like, params)
    for s in range(0, xs.shape[0], k):
        g, carry = window_grad(params, carry, xs[s : s + k], targets[s : s + k])
        total = jax.tree_util.tree_map(jnp.add, total, g)
    return total


@pytest.mark.parametrize("k", [1, 3])
def test_tbptt_matches_window_loop(k):
    params, xs, targets = _problem(ELMAN, T=T)
    loss, grads = G.tbptt(ELMAN, mse_loss, k)(params, xs, targets)
    ref = _tbptt_reference(ELMAN, params, xs, targets, k)
    assert _rel(grads, ref) < 1e-12
    full_loss, full = BPTT(params, xs, targets)
    np.testing.assert_allclose(loss, full_loss, rtol=1e-12)  # same loss, truncated grad
    assert _rel(grads, full) > 1e-3


def test_tbptt_with_window_T_is_bptt():
    params, xs, targets = _problem(ELMAN, T=T)
    mask = jnp.arange(T) < 6
    out = G.tbptt(ELMAN, mse_loss, T)(params, xs, targets, mask=mask)
    ref = BPTT(params, xs, targets, mask=mask)
    assert _rel(out[1], ref[1]) < 1e-12


@pytest.mark.parametrize("checkpoint", [True, 4])
def test_checkpointed_bptt_equals_bptt(checkpoint):
    params, xs, targets = _problem(ELMAN, T=T)  # segments of 3 (True), or 4 padded to 12
    mask = jnp.arange(T) < 8
    out = G.bptt(ELMAN, mse_loss, checkpoint=checkpoint)(params, xs, targets, mask=mask)
    ref = BPTT(params, xs, targets, mask=mask)
    np.testing.assert_allclose(out[0], ref[0], rtol=1e-13)
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


def test_uoro_is_exact_for_one_step():
    """With T=1 the influence from earlier steps is zero: UORO is exact."""
    params, xs, targets = _problem(ELMAN, T=1)
    out = UORO(params, xs, targets, key=jax.random.key(3))
    ref = BPTT(params, xs, targets)
    assert _rel(out[1], ref[1]) < 1e-12


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
