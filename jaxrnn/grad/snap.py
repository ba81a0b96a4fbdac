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

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn.base import Cell
from jaxrnn.grad._common import (
    FlatCell,
    ForwardMethod,
    GradFn,
    StepLoss,
    forward_grad_fn,
    probe_pattern,
)

__all__ = ["SnapContext", "snap1", "snap1_method"]


class SnapContext(NamedTuple):
    """``units (K, P)``, ``valid (K, P)``: the carry entries each parameter touches in
    one step (padded); ``K``; ``diag_D``: ``D_t`` is diagonal; ``out_idx``: the carry
    entries that are the output (``None`` when the output is not in the carry). The
    trace is ``E (K, P)``."""

    fc: FlatCell
    units: jax.Array
    valid: jax.Array
    K: int
    diag_D: bool
    out_idx: np.ndarray | None


def _prepare(cell, fc, theta, c, x) -> SnapContext:
    pat = probe_pattern(cell, fc, theta, c, x)
    units, valid = jnp.asarray(pat.units), jnp.asarray(pat.valid)
    return SnapContext(fc, units, valid, pat.K, pat.diag_D, pat.out_idx)


def _gather(M, u):
    """``M[u[k, j], j]`` for ``M (S, P)``, ``u (K, P)``."""
    return jnp.take_along_axis(M, u, axis=0)


def _init(ctx: SnapContext, theta, c, M0, key):
    if M0 is None:
        return jnp.zeros((ctx.K, ctx.fc.P), theta.dtype)
    return jnp.where(ctx.valid, _gather(M0, ctx.units), 0.0).astype(theta.dtype)


def _history(ctx: SnapContext, E, g_c, g_y):
    return jnp.sum(g_c[ctx.units] * E, axis=0)


def _update(ctx: SnapContext, theta, c, x, E, key):
    u, valid, K, diag_D = ctx.units, ctx.valid, ctx.K, ctx.diag_D
    step_c = lambda th, cc: ctx.fc.f(th, cc, x)[0]  # noqa: E731
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


def _current(ctx: SnapContext, E, g_y):
    if ctx.out_idx is None:
        return None  # output not in the carry: differentiate the step exactly instead
    delta = jnp.zeros((ctx.fc.S,), E.dtype).at[ctx.out_idx].add(jnp.reshape(g_y, (-1,)))
    return jnp.sum(delta[ctx.units] * E, axis=0)


def snap1_method() -> ForwardMethod:
    """SnAp-1 as a :class:`ForwardMethod` (compressed ``E (K, P)``)."""
    return ForwardMethod(
        prepare=_prepare, init=_init, update=_update, history=_history, current=_current
    )


def snap1(cell: Cell, step_loss: StepLoss) -> GradFn:
    """SnAp-1 gradient function, same call as :func:`jaxrnn.grad.rtrl`.

    ``grad_fn((cell_params, head_params), xs, targets, carry0=None, *, mask=None)
    -> (loss, (cell_grads, head_grads))``; see the module docstring for the
    approximation, its bias and its cost.
    """
    return forward_grad_fn(cell, step_loss, snap1_method())
