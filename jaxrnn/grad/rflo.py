r"""RFLO: random-feedback local online learning (Murray, eLife 2019), symmetric feedback.

For an Elman-type cell (output ``y_t`` part of the carry ``h_t``, every parameter
entry immediately affecting one carry entry ``u(j)``) RFLO drops the propagation of
the influence through the recurrent weights and keeps a leaky trace of the immediate
Jacobian, with the shape of the parameters:

.. math::

    B_t = (1 - \alpha) B_{t-1} + i_t, \qquad i_t = \mathbf{1}^\top I_t
    \quad(\text{Elman: } i_{t,ij} = \phi'(a_{t,i})\, \hat a_{t-1,j}),

    \nabla_\theta L_t \approx \delta_t[u] \odot B_t, \qquad
    \delta_t = \frac{\partial L_t}{\partial h_t}.

For Murray's leaky network ``h_t = (1-alpha) h_{t-1} + alpha phi(W h_{t-1} + U x_t + b)``
the immediate Jacobian is ``alpha phi'(a_t) a_hat^T`` and this is exactly his update
``B_t = (1-alpha) B_{t-1} + alpha phi'(a_t) a_hat^T``; equivalently, RFLO approximates
``D_t`` by ``(1-alpha) Id``. Only symmetric feedback (the true ``delta_t`` through the
readout) is implemented; Murray's random feedback matrix is not.

The trace starts at zero: RFLO treats the initial carry as a constant, so parameters
that only reach it (a learned ``c_0``, :func:`jaxrnn.learned_initial_state`) get no
gradient. With ``alpha = 1`` the trace is the immediate Jacobian alone and RFLO is
exactly TBPTT(1) (one-step truncated BPTT) for a cell whose initial carry does not
depend on the parameters (TBPTT(1) also differentiates ``c_0`` in its first window).
Bias and variance: deterministic, biased (all recurrent credit assignment through
``W`` is dropped; a 1-step method). Cost:
``O(P)`` time and memory per step (one VJP with a ones cotangent).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxrnn.base import Cell
from jaxrnn.grad._common import (
    FlatCell,
    ForwardMethod,
    GradFn,
    StepLoss,
    forward_grad_fn,
    probe_pattern,
)

__all__ = ["RFLOContext", "rflo", "rflo_method"]


class RFLOContext(NamedTuple):
    """``units (P,)``: the carry entry each parameter entry feeds; ``out_idx``: the
    carry entries that are the output. The trace is ``B (P,)``."""

    fc: FlatCell
    units: jax.Array
    out_idx: jax.Array


def _check_alpha(alpha) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha <= 1:
        raise ValueError(f"alpha must be a number in (0, 1], got {alpha!r}")
    return float(alpha)


def rflo_method(alpha: float = 1.0) -> ForwardMethod:
    """RFLO as a :class:`ForwardMethod` (compressed trace ``B (P,)``).

    RFLO is defined on the new carry (``delta_t = dL_t/dh_t`` times the updated trace),
    so it gives ``current`` and no ``history``."""
    alpha = _check_alpha(alpha)

    def prepare(cell, fc, theta, c, x):
        pat = probe_pattern(cell, fc, theta, c, x)
        if pat.out_idx is None:
            raise ValueError(
                "rflo needs an Elman-type cell whose output y_t is (part of) its carry h_t"
            )
        if pat.K > 1:
            raise ValueError(
                f"rflo needs an Elman-type cell: a parameter touches {pat.K} carry entries "
                "in one step (at most 1 allowed)"
            )
        return RFLOContext(fc, jnp.asarray(pat.units[0]), jnp.asarray(pat.out_idx))

    def init(ctx: RFLOContext, theta, c, M0, key):
        return jnp.zeros_like(theta)

    def current(ctx: RFLOContext, B, g_y):
        delta = jnp.zeros((ctx.fc.S,), B.dtype).at[ctx.out_idx].add(jnp.reshape(g_y, (-1,)))
        return delta[ctx.units] * B

    def update(ctx: RFLOContext, theta, c, x, B, key):
        _, vjp = jax.vjp(lambda th: ctx.fc.f(th, c, x)[0], theta)
        (i_t,) = vjp(jnp.ones_like(c))
        return (1.0 - alpha) * B + i_t

    return ForwardMethod(prepare=prepare, init=init, update=update, current=current)


def rflo(cell: Cell, step_loss: StepLoss, *, alpha: float = 1.0) -> GradFn:
    """RFLO gradient function, same call as :func:`jaxrnn.grad.rtrl`.

    Args:
      cell: an Elman-type cell (``y_t`` is (part of) the carry ``h_t``; each parameter
        entry feeds one carry entry). Checked when traced (``ValueError`` otherwise).
      step_loss: ``(head_params, y_t, target_t) -> scalar``.
      alpha: leak ``dt / tau`` in ``(0, 1]``; ``1`` gives TBPTT(1).
    """
    return forward_grad_fn(cell, step_loss, rflo_method(alpha))
