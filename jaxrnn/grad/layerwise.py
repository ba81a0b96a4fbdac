r"""Exact temporal RTRL within each layer, spatial backpropagation between layers
(Zucchet, Meier, Schug, Mujika & Sacramento 2023, "Online learning of long-range
dependencies", NeurIPS: their "online_full" rule for stacked LRU layers).

For a stack of element-wise cells (:func:`jaxrnn.cells.stack_cells`, each declared
``diagonal=True`` or ``diagonal=k``), exact RTRL of the whole stack is dense: the
parameters of layer ``l`` reach layer ``l + 1`` through ``y^{(l)}_t``, so the influence
has cross-layer blocks. This rule keeps, for every layer, only its own compressed
influence ``E^{(l)}`` (:mod:`jaxrnn.grad.diagonal`, with the layer's input
``y^{(l-1)}_t`` treated as given), i.e. it approximates

.. math::

    M_t \approx \mathrm{blockdiag}_l(M^{(l)}_t), \qquad
    M^{(l)}_t = D^{(l)}_t M^{(l)}_{t-1} + I^{(l)}_t ,

and uses the exact one-step quantities of the stack otherwise:

.. math::

    \nabla_{\theta} L_t \approx \frac{\partial L_t}{\partial \theta}\Big|_{c_{t-1}}
        + \sum_l \frac{\partial L_t}{\partial c^{(l)}_{t-1}} M^{(l)}_{t-1},

where ``dL_t/dc^{(l)}_{t-1} = delta^{(l)}_t D^{(l)}_t`` with ``delta^{(l)}_t`` the error
backpropagated spatially (through the layers above, at step ``t`` only). This is their
``delta^{(l)}_t . e^{(l)}_t`` with ``e`` the per-layer traces. With one layer it is exact
RTRL (equal to BPTT); with more it ignores how a layer's parameters change the layers
above it in later steps. Cost ``O(P)`` per step (``k`` times that for units of ``k``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from jaxrnn.base import Cell
from jaxrnn.grad import diagonal as _diag
from jaxrnn.grad._common import (
    FlatCell,
    ForwardMethod,
    GradFn,
    StepLoss,
    flat_cell,
    forward_grad_fn,
)

__all__ = ["layers_of", "layerwise", "layerwise_method"]


class LayerwiseContext(NamedTuple):
    """The stack's flat cell, each layer's :class:`~jaxrnn.grad.DiagonalContext`, and
    each layer's ``(P, S)``. The trace is one element-wise trace ``E (k, P)`` per layer."""

    fc: FlatCell
    layers: tuple
    sizes: list


def layers_of(cell: Cell) -> tuple[Cell, ...]:
    """The layers of a stack built by :func:`jaxrnn.cells.stack_cells`, read from its
    description (``cell.config``); ``(cell,)`` for any other cell."""
    cfg = cell.config
    if cfg is not None and cfg.kind == "stack_cells":
        if all(a is b for a, b in zip(cell[:-1], cfg.built, strict=True)):
            return tuple(cfg.args)
    return (cell,)


def _check_element_wise(cells: tuple[Cell, ...]) -> None:
    for k, cell in enumerate(cells):
        if not cell.diagonal:
            raise ValueError(
                f"layerwise needs element-wise cells (diagonal=True or k); cell {k} is dense"
            )


def layerwise_method(cell: Cell) -> ForwardMethod:
    """The layer-wise rule as a :class:`~jaxrnn.grad.ForwardMethod` for ``cell``: a stack
    of element-wise cells (:func:`layers_of`), or one element-wise cell (then it is exact
    element-wise RTRL). What :func:`jaxrnn.grad.online` runs for ``method="layerwise"``.

    Raises:
      ValueError: a layer that is not declared element-wise.
    """
    cells = layers_of(cell)
    _check_element_wise(cells)
    if len(cells) == 1 and cells[0] is cell:
        return _diag.diagonal_method()

    def split(fc, theta, c):
        params, carry = fc.unravel_params(theta), fc.unravel_carry(c)
        return list(zip(params, carry))

    def prepare(cell, fc, theta, c, x):
        ctxs, y = [], x
        for layer, (p, cl) in zip(cells, split(fc, theta, c)):
            fcl, th, cc = flat_cell(layer, p, cl)
            ctxs.append(_diag._prepare(layer, fcl, th, cc, y))
            y = jax.eval_shape(layer.step, p, cl, y)[1]
            y = jnp.zeros(y.shape, y.dtype)
        sizes = [(ctx[0].P, ctx[0].S) for ctx in ctxs]
        return LayerwiseContext(fc, tuple(ctxs), sizes)

    def init(ctx, theta, c, M0, key):
        fc, ctxs, sizes = ctx
        out, p0, s0 = [], 0, 0
        for lctx, (P, S), (p, cl) in zip(ctxs, sizes, split(fc, theta, c)):
            th, cc = ravel_pytree(p)[0], ravel_pytree(cl)[0]
            m = None if M0 is None else M0[s0 : s0 + S, p0 : p0 + P]
            out.append(_diag._init(lctx, th, cc, m, key))
            p0, s0 = p0 + P, s0 + S
        return tuple(out)

    def history(ctx, trace, g_c, g_y):
        _, ctxs, sizes = ctx
        parts, s0 = [], 0
        for lctx, (_, S), E in zip(ctxs, sizes, trace):
            parts.append(_diag._history(lctx, E, g_c[s0 : s0 + S], None))
            s0 += S
        return jnp.concatenate(parts)

    def update(ctx, theta, c, x, trace, key):
        fc, ctxs, _ = ctx
        out, y = [], x
        for layer, lctx, (p, cl), E in zip(cells, ctxs, split(fc, theta, c), trace):
            th, cc = ravel_pytree(p)[0], ravel_pytree(cl)[0]
            out.append(_diag._update(lctx, th, cc, y, E, key))
            y = layer.step(p, cl, y)[1]
        return tuple(out)

    return ForwardMethod(prepare=prepare, init=init, update=update, history=history)


def layerwise_grad(cell: Cell, step_loss: StepLoss) -> GradFn:
    """The layer-wise gradient function of ``cell`` (a stack of element-wise cells from
    :func:`jaxrnn.cells.stack_cells`, or one such cell), same call as
    :func:`jaxrnn.grad.rtrl` (``GRADIENT_METHODS["layerwise"]``)."""
    return forward_grad_fn(cell, step_loss, layerwise_method(cell))


def layerwise(cells: tuple[Cell, ...] | list[Cell], step_loss: StepLoss) -> tuple[Cell, GradFn]:
    """``(stack, grad_fn)``: ``stack = stack_cells(*cells)`` and its gradient function by
    the layer-wise rule (module docstring), same call as :func:`jaxrnn.grad.rtrl`.

    Raises:
      ValueError: a cell that is not declared element-wise (``diagonal``), or whose
        declaration is false (when the function is traced).
    """
    from jaxrnn.cells.stacked import stack_cells

    cells = tuple(cells)
    _check_element_wise(cells)
    stack = stack_cells(*cells)
    return stack, layerwise_grad(stack, step_loss)
