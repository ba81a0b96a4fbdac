r"""SnAp-1: the sparse n-step approximation of RTRL with n = 1 (Menick et al., ICLR 2021).

SnAp-n keeps only the entries of the influence ``M_t = d c_t / d theta`` that are
reachable from each parameter within ``n`` steps; for ``n = 1`` these are the entries
where the immediate Jacobian ``I_t`` is structurally non-zero (the "mask"). With
``K`` the most carry entries one parameter touches in a step (``K = 1`` for Elman and
the reset-after GRU, ``2`` for the LSTM's ``(h, c)``), the influence is stored
compressed as ``E (K, P)`` with carry indices ``u (K, P)``:

.. math::

    E_t[k, j] = \sum_{k'} D_t[u_{kj}, u_{k'j}]\, E_{t-1}[k', j] + I_t[u_{kj}, j],
    \qquad
    \nabla_\theta L_t \approx \sum_k \delta_t[u_{kj}]\, E_t[k, j],
    \qquad \delta_t = \frac{\partial L_t}{\partial c_t}.

``delta_t`` needs the output to be part of the new carry (``y_t = c_t[idx]``, detected
when traced; true for every built-in and stacked cell). For a cell whose output is not
in its carry, the loss at ``t`` is instead differentiated exactly through step ``t``:
``dL_t/dtheta|_{c_{t-1}} + sum_k g_c[u_kj] E_{t-1}[k, j]`` with
``g_c = dL_t/dc_{t-1}``.

Bias and variance: deterministic (zero variance), biased: it drops every path in which
a parameter's effect crosses to another unit before the current step. It is exact when
``D_t`` is diagonal (e.g. an Elman cell with diagonal ``W``); the bias grows with the
strength of cross-unit recurrence. Measured cosine with the true gradient ~0.88
(Elman) and ~0.96 (GRU) at n=8, T=25 (REFERENCES.md §5.1).

Cost per step: memory ``O(K P)``. Time: ``I_t`` by ``jacrev`` (``S`` VJPs) and ``D_t``
by ``jacfwd`` (``S`` JVPs), ``O(S P)``, i.e. ``n`` times cheaper than exact RTRL's
``O(S^2 P)``; a cell-specific ``diag(D_t)`` would make it ``O(P)`` (not exposed by the
Cell protocol). For element-wise cells it uses one VJP and one JVP (``O(P)``), like
:mod:`jaxrnn.grad.diagonal`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxrnn.base import Cell
from jaxrnn.grad._common import GradFn, Method, StepLoss, forward_grad_fn, probe_pattern

__all__ = ["snap1", "snap1_method"]


def _prepare(cell, fc, theta, c, x):
    pat = probe_pattern(cell, fc, theta, c, x)
    return fc, jnp.asarray(pat.units), jnp.asarray(pat.valid), pat.K, pat.diag_D, pat.out_idx


def _gather(M, u):
    """``M[u[k, j], j]`` for ``M (S, P)``, ``u (K, P)``."""
    return jnp.take_along_axis(M, u, axis=0)


def _init(ctx, theta, c, M0, key):
    fc, u, valid, K, _, _ = ctx
    if M0 is None:
        return jnp.zeros((K, fc.P), theta.dtype)
    return jnp.where(valid, _gather(M0, u), 0.0).astype(theta.dtype)


def _history(ctx, E, g_c, g_y):
    _, u, _, _, _, _ = ctx
    return jnp.sum(g_c[u] * E, axis=0)


def _update(ctx, theta, c, x, E, key):
    fc, u, valid, K, diag_D, _ = ctx
    step_c = lambda th, cc: fc.f(th, cc, x)[0]  # noqa: E731
    if K == 1:
        _, vjp = jax.vjp(lambda th: step_c(th, c), theta)
        (i_t,) = vjp(jnp.ones_like(c))
        I_g = i_t[None, :]
    else:
        I_g = _gather(jax.jacrev(lambda th: step_c(th, c))(theta), u)
    if diag_D:
        _, d = jax.jvp(lambda cc: step_c(theta, cc), (c,), (jnp.ones_like(c),))
        DE = jnp.where(u[:, None, :] == u[None, :, :], d[u][:, None, :], 0.0)
    else:
        D = jax.jacfwd(lambda cc: step_c(theta, cc))(c)
        DE = D[u[:, None, :], u[None, :, :]]  # (K, K, P)
    DE = jnp.where(valid[None, :, :], DE, 0.0)
    new = jnp.einsum("klp,lp->kp", DE, E) + I_g
    return jnp.where(valid, new, 0.0)


def _current(ctx, E, g_y):
    fc, u, _, _, _, out_idx = ctx
    if out_idx is None:
        return None  # output not in the carry: differentiate the step exactly instead
    delta = jnp.zeros((fc.S,), E.dtype).at[out_idx].add(jnp.reshape(g_y, (-1,)))
    return jnp.sum(delta[u] * E, axis=0)


def snap1_method() -> Method:
    """SnAp-1 as a :class:`~jaxrnn.grad._common.Method` (compressed ``E (K, P)``)."""
    return Method(_init, _history, _update, _prepare, current=_current)


def snap1(cell: Cell, step_loss: StepLoss) -> GradFn:
    """SnAp-1 gradient function, same call as :func:`jaxrnn.grad.rtrl`.

    ``grad_fn((cell_params, head_params), xs, targets, carry0=None, *, mask=None)
    -> (loss, (cell_grads, head_grads))``; see the module docstring for the
    approximation, its bias and its cost.
    """
    return forward_grad_fn(cell, step_loss, snap1_method())
