r"""Exact real-time recurrent learning (Williams & Zipser 1989), for any cell.

The influence matrix ``M_t = d c_t / d theta (S, P)`` (carry raveled to ``S`` entries,
parameters to ``P``) is carried through the scan beside the carry:

.. math::

    M_t = D_t M_{t-1} + I_t, \qquad
    D_t = \frac{\partial f}{\partial c_{t-1}} \in \mathbb{R}^{S\times S}, \qquad
    I_t = \frac{\partial f}{\partial \theta} \in \mathbb{R}^{S\times P}, \\
    \nabla_\theta L_t = \frac{\partial L_t}{\partial \theta}\Big|_{c_{t-1}}
                      + \frac{\partial L_t}{\partial c_{t-1}} M_{t-1},

where ``(c_t, y_t) = f(theta, c_{t-1}, x_t)`` is ``cell.step`` and
``L_t = step_loss(head, y_t, target_t)``. For the Elman cell of seed 002
(``h_t = tanh(W h_{t-1} + U x_t + b)``) this is the hand-derived recursion
``dh_t/dW_ij = diag(1 - h_t^2) (p_i(h_{t-1,j}) + W dh_{t-1}/dW_ij)``:
``D_t = diag(1 - h_t^2) W`` and ``I_t`` holds ``p_i(h_{t-1,j})`` scaled by
``1 - h_{t,i}^2``.

``I_t`` comes from ``jax.jacrev`` (S VJPs), ``D_t`` from ``jax.jacfwd`` wrt the carry
(S JVPs) and ``D_t M_{t-1}`` is one matrix product; a parameter basis is never pushed
through forward mode. With ``carry0=None`` the initial carry
``initial_carry(params)`` may depend on the parameters (a learned ``h_0``):
``M_0 = d c_0 / d theta``.

Cost per step (dense ``n``-unit cell, ``P ~ n^2`` parameters): time ``O(S^2 P) = O(n^4)``,
memory ``O(S P) = O(n^3)``, independent of ``T``. It equals BPTT to rounding
(parameters frozen over the sequence) and, unlike BPTT, gives ``dL_t/dtheta`` at each
step, which :func:`jaxrnn.grad.online` uses for fully online learning.

Cells declared element-wise (``Cell(..., diagonal=True)``) take the exact
``O(P)`` path of :mod:`jaxrnn.grad.diagonal` unless ``diagonal=False`` is passed.
"""

from __future__ import annotations

import jax

from jaxrnn.base import Cell
from jaxrnn.grad._common import FlatCell, ForwardMethod, GradFn, StepLoss, forward_grad_fn
from jaxrnn.grad.diagonal import diagonal_method

__all__ = ["dense_method", "rtrl", "rtrl_method"]


# Context: the FlatCell itself. Trace: the influence M (S, P).


def _prepare(cell, fc, theta, c, x) -> FlatCell:
    return fc


def _init(fc: FlatCell, theta, c, M0, key):
    if M0 is None:
        return jax.numpy.zeros((fc.S, fc.P), theta.dtype)
    return M0


def _history(fc: FlatCell, M, g_c, g_y):
    return g_c @ M


def _update(fc: FlatCell, theta, c, x, M, key):
    D = jax.jacfwd(lambda cc: fc.f(theta, cc, x)[0])(c)
    I = jax.jacrev(lambda th: fc.f(th, c, x)[0])(theta)
    return D @ M + I


def dense_method() -> ForwardMethod:
    """Exact RTRL with a dense influence ``M (S, P)`` as a :class:`ForwardMethod`."""
    return ForwardMethod(prepare=_prepare, init=_init, update=_update, history=_history)


def rtrl(cell: Cell, step_loss: StepLoss, *, diagonal: bool | None = None) -> GradFn:
    """Exact RTRL gradient function (see the module docstring for the equations).

    Args:
      cell: any :class:`~jaxrnn.Cell` (built-in, stacked via
        :func:`jaxrnn.cells.stack_cells`, or user-defined with only ``init``,
        ``initial_carry``, ``step``).
      step_loss: ``(head_params, y_t, target_t) -> scalar``; the sequence loss is the
        sum over (unmasked) steps.
      diagonal: use the compressed element-wise path (exact, ``O(P)`` per step);
        default ``cell.diagonal``. The declaration is verified when the function is
        traced (``ValueError`` if the cell is not element-wise).

    Returns:
      ``grad_fn((cell_params, head_params), xs (T, I), targets (T, ...), carry0=None,
      *, mask=None) -> (loss, (cell_grads, head_grads))``. ``mask (T,)`` of 0/1:
      masked steps add no loss and leave the carry unchanged.
    """
    return forward_grad_fn(cell, step_loss, rtrl_method(cell, diagonal=diagonal))


def rtrl_method(cell: Cell, *, diagonal: bool | None = None) -> ForwardMethod:
    """Exact RTRL for ``cell``: the element-wise ``O(P)`` method when ``diagonal``
    (default ``cell.diagonal``), else the dense one."""
    use_diag = cell.diagonal if diagonal is None else diagonal
    return diagonal_method() if use_diag else dense_method()
