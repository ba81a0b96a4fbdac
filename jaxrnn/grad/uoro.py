r"""UORO: unbiased online recurrent optimisation (Tallec & Ollivier, ICLR 2018).

The influence ``M_t = d c_t / d theta (S, P)`` is replaced by a random rank-one
estimate ``s_t theta_t^T`` with ``E[s_t theta_t^T] = M_t``. With ``nu_t`` a vector of
independent random signs (``E[nu nu^T] = Id``):

.. math::

    s_t = \rho_0 D_t s_{t-1} + \rho_1 \nu_t, \qquad
    \tilde\theta_t = \tilde\theta_{t-1} / \rho_0 + \nu_t^\top I_t / \rho_1,

    \rho_0 = \sqrt{\frac{\|\tilde\theta_{t-1}\| + \epsilon}{\|D_t s_{t-1}\| + \epsilon}},
    \qquad
    \rho_1 = \sqrt{\frac{\|\nu_t^\top I_t\| + \epsilon}{\|\nu_t\| + \epsilon}},

    \nabla_\theta L_t \approx \frac{\partial L_t}{\partial\theta}\Big|_{c_{t-1}}
                            + (g_c \cdot s_{t-1})\, \tilde\theta_{t-1}.

The cross terms ``rho_0/rho_1 D s nu^T I`` have zero mean because ``nu_t`` is drawn
fresh, so the estimate is unbiased for any positive ``rho_0, rho_1``; these choices
minimise its variance (the paper's variance-reduction rescaling). A learned initial
carry is seeded with ``s_0 = nu_0``, ``theta_0 = nu_0^T M_0`` (also unbiased).

Bias and variance: unbiased, high variance (single-draw cosine with the true gradient
~0.2 at n=8, T=25; the mean of ``N`` draws converges as ``1/sqrt(N)``). Cost per step:
one JVP (``D_t s``) and one VJP (``nu^T I_t``), ``O(P)`` time and ``O(S + P)`` memory,
for any differentiable cell.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxrnn.base import Cell
from jaxrnn.grad._common import FlatCell, ForwardMethod, GradFn, StepLoss, forward_grad_fn

__all__ = ["UOROTrace", "uoro", "uoro_method"]


class UOROTrace(NamedTuple):
    """The rank-one influence estimate ``M_t ~ s theta_tilde^T``: ``s (S,)``,
    ``theta_tilde (P,)``. The context is the FlatCell."""

    s: jax.Array
    theta_tilde: jax.Array


def _prepare(cell, fc, theta, c, x) -> FlatCell:
    return fc


def _init(fc: FlatCell, theta, c, M0, key) -> UOROTrace:
    if M0 is None:
        return UOROTrace(jnp.zeros_like(c), jnp.zeros_like(theta))
    nu = jax.random.rademacher(key, (fc.S,), c.dtype)
    return UOROTrace(nu, nu @ M0)


def _history(fc: FlatCell, trace: UOROTrace, g_c, g_y):
    return jnp.dot(g_c, trace.s) * trace.theta_tilde


def _update(fc: FlatCell, theta, c, x, trace: UOROTrace, key, eps=1e-7) -> UOROTrace:
    s, tt = trace
    nu = jax.random.rademacher(key, (fc.S,), c.dtype)
    _, Ds = jax.jvp(lambda cc: fc.f(theta, cc, x)[0], (c,), (s,))
    _, vjp = jax.vjp(lambda th: fc.f(th, c, x)[0], theta)
    (nuI,) = vjp(nu)
    rho0 = jnp.sqrt((jnp.linalg.norm(tt) + eps) / (jnp.linalg.norm(Ds) + eps))
    rho1 = jnp.sqrt((jnp.linalg.norm(nuI) + eps) / (jnp.linalg.norm(nu) + eps))
    return UOROTrace(rho0 * Ds + rho1 * nu, tt / rho0 + nuI / rho1)


def uoro_method() -> ForwardMethod:
    """UORO as a :class:`ForwardMethod` (needs a key)."""
    return ForwardMethod(
        prepare=_prepare, init=_init, update=_update, history=_history, needs_key=True
    )


def uoro(cell: Cell, step_loss: StepLoss) -> GradFn:
    """UORO gradient function: like :func:`jaxrnn.grad.rtrl` plus a required ``key``.

    ``grad_fn((cell_params, head_params), xs, targets, carry0=None, *, mask=None,
    key) -> (loss, (cell_grads, head_grads))``. ``head_grads`` and the loss are exact;
    ``cell_grads`` is a random unbiased estimate (one draw per call).
    """
    return forward_grad_fn(cell, step_loss, uoro_method())
