r"""Backpropagation through time: full, checkpointed and truncated.

All three return the common ``grad_fn`` of :mod:`jaxrnn.grad`:
``grad_fn((cell_params, head_params), xs (T, I), targets (T, ...), carry0=None, *,
mask=None) -> (loss, (cell_grads, head_grads))`` with the sequence loss

.. math:: L = \sum_t m_t\, \ell(\text{head}, y_t, \text{target}_t), \qquad
          (c_t, y_t) = \begin{cases} f(\theta, c_{t-1}, x_t) & m_t = 1 \\
                                     (c_{t-1}, \cdot) & m_t = 0 \end{cases}

(masked steps add no loss and leave the carry unchanged, so a 0/1 prefix mask gives
variable lengths).

- :func:`bptt` (Werbos 1990): ``jax.value_and_grad`` through the engine; memory
  ``O(T S)`` for the stored activations, time ``O(P)`` per step (about 3 forward steps).
  With ``checkpoint=k`` (or ``True`` for ``k = ceil(sqrt(T))``) the scan runs as
  ``ceil(T/k)`` segments of ``k`` steps under ``jax.checkpoint``: only segment-boundary
  carries are stored and each segment is recomputed in the backward pass, so memory is
  ``O((T/k + k) S)`` (``O(sqrt(T) S)``) for one extra forward pass (Chen et al. 2016;
  Gruslys et al. 2016).
- :func:`tbptt` (Williams & Peng 1990): truncated BPTT(k, k). The sequence is cut into
  windows of ``k`` steps; the gradient is the sum over windows of the window loss's
  gradient with the carry entering the window held constant (``stop_gradient``), so no
  credit flows across a window boundary. Biased (drops dependencies longer than the
  window), deterministic, memory ``O(k S)``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxrnn.base import Cell, tree_select
from jaxrnn.engine import inert, loop, run
from jaxrnn.grad._common import (
    GRAD_FN_DOC,
    GradFn,
    StepLoss,
    as_mask,
    check_positive_int,
    check_sequence_args,
)

__all__ = ["bptt", "sequence_loss", "tbptt"]


def _pad(tree, T_pad, value=0):
    def pad(a):
        extra = T_pad - a.shape[0]
        if extra == 0:
            return a
        widths = [(0, extra)] + [(0, 0)] * (a.ndim - 1)
        return jnp.pad(a, widths, constant_values=value)

    return jax.tree_util.tree_map(pad, tree)


def _scan_loss(cell, step_loss, cell_params, head, carry, xs, targets, mask):
    """``(final_carry, summed loss)`` of a masked run of the engine (``mask=None``: every
    step counts); targets of masked steps are zeroed, so padding is inert."""
    carry, ys = run(cell, cell_params, xs, carry, mask=mask)
    if mask is not None:
        targets = inert(targets, mask)
    losses = jax.vmap(step_loss, in_axes=(None, 0, 0))(head, ys, targets)
    if mask is not None:
        losses = jnp.where(mask.reshape((-1,) + (1,) * (losses.ndim - 1)), losses, 0)
    return carry, jnp.sum(losses, axis=0)


def _segment_length(T: int) -> int:
    """A divisor of ``T`` near ``sqrt(T)`` (no padding), else ``ceil(sqrt(T))``."""
    r = math.sqrt(T)
    divisors = [d for d in range(max(1, math.ceil(r / 2)), math.floor(2 * r) + 1) if T % d == 0]
    return min(divisors, key=lambda d: abs(d - r)) if divisors else math.ceil(r)


def sequence_loss(
    cell: Cell, step_loss: StepLoss, params, xs, targets, carry0=None, *, mask=None
) -> jax.Array:
    """The sequence loss ``sum_t m_t step_loss(head, y_t, target_t)`` (no gradient).

    Useful as the oracle for ``jax.jacfwd`` / ``jax.grad`` checks.
    """
    T = check_sequence_args(cell, params, xs, targets, carry0, mask)
    cell_params, head = params
    carry = cell.initial_carry(cell_params) if carry0 is None else carry0
    return _scan_loss(cell, step_loss, cell_params, head, carry, xs, targets, as_mask(mask, T))[1]


def bptt(cell: Cell, step_loss: StepLoss, *, checkpoint: int | bool | None = None) -> GradFn:
    """Full BPTT gradient function (see the module docstring).

    Args:
      cell: any :class:`~jaxrnn.Cell`.
      step_loss: ``(head_params, y_t, target_t) -> scalar``.
      checkpoint: ``None``/``False`` (store every step), ``True`` (segments of
        ``ceil(sqrt(T))`` steps) or a segment length ``k >= 1``.
    """
    if checkpoint is not None and not isinstance(checkpoint, bool):
        check_positive_int("checkpoint", checkpoint)

    def loss_fn(params, xs, targets, carry0, mask):
        cell_params, head = params
        carry = cell.initial_carry(cell_params) if carry0 is None else carry0
        if checkpoint is None or checkpoint is False:
            return _scan_loss(cell, step_loss, cell_params, head, carry, xs, targets, mask)[1]
        T = xs.shape[0]
        k = _segment_length(T) if checkpoint is True else min(int(checkpoint), T)
        n = -(-T // k)
        if mask is None and n * k != T:
            mask = jnp.ones((T,), bool)
        data = (_pad(xs, n * k), _pad(targets, n * k), _pad(mask, n * k, False))

        # Segments slice the (loop-invariant) inputs by index, so the backward pass
        # stores only one carry per segment, not a stacked copy of the inputs.
        @jax.checkpoint
        def segment(c, i):
            x, tgt, m = jax.tree_util.tree_map(
                lambda a: jax.lax.dynamic_slice_in_dim(a, i * k, k), data
            )
            return _scan_loss(cell, step_loss, cell_params, head, c, x, tgt, m)

        def outer(state, i):
            c, total = state
            c, loss = segment(c, i)
            return (c, total + loss), None

        l0 = jax.eval_shape(lambda: segment(carry, 0)[1])
        (_, total), _ = loop(outer, (carry, jnp.zeros(l0.shape, l0.dtype)), jnp.arange(n))
        return total

    compiled = jax.jit(jax.value_and_grad(loss_fn))

    def grad_fn(params, xs, targets, carry0=None, *, mask=None, key=None):
        del key  # deterministic (the common call of every method)
        T = check_sequence_args(cell, params, xs, targets, carry0, mask)
        loss, grads = compiled(params, xs, targets, carry0, as_mask(mask, T))
        return loss, grads

    grad_fn.__doc__ = GRAD_FN_DOC
    return grad_fn


def tbptt(cell: Cell, step_loss: StepLoss, k: int) -> GradFn:
    """Truncated BPTT(k, k) gradient function (see the module docstring).

    Args:
      cell: any :class:`~jaxrnn.Cell`.
      step_loss: ``(head_params, y_t, target_t) -> scalar``.
      k: window length, an integer ``>= 1``. ``tbptt(cell, loss, T)`` equals
        :func:`bptt`; ``k = 1`` differentiates each step with its incoming carry fixed.

    The loss is the full sequence loss; only its gradient is truncated. With
    ``carry0=None`` a parameter-dependent initial carry receives gradient from the
    first window only.
    """
    k = check_positive_int("k", k)

    def truncated(params, xs, targets, carry0, mask):
        cell_params = params[0]
        T = xs.shape[0]
        n = -(-T // k)
        if mask is None and n * k != T:
            mask = jnp.ones((T,), bool)
        seg = lambda a: a.reshape((n, k, *a.shape[1:]))  # noqa: E731
        xs_s, tg_s, m_s = jax.tree_util.tree_map(
            seg, (_pad(xs, n * k), _pad(targets, n * k), _pad(mask, n * k, False))
        )

        def window_loss(p, c, first, x, tgt, m):
            cp, hp = p
            c = jax.lax.stop_gradient(c)
            if carry0 is None:
                c = tree_select(first, cell.initial_carry(cp), c)
            return _scan_loss(cell, step_loss, cp, hp, c, x, tgt, m)[::-1]

        def body(state, inp):
            c, g_acc, l_acc = state
            w, x, tgt, m = inp
            (loss, c_new), g = jax.value_and_grad(window_loss, has_aux=True)(
                params, c, w == 0, x, tgt, m
            )
            g_acc = jax.tree_util.tree_map(jnp.add, g_acc, g)
            return (c_new, g_acc, l_acc + loss), None

        c0 = cell.initial_carry(cell_params) if carry0 is None else carry0
        zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
        loss_shape = jax.eval_shape(
            lambda: window_loss(params, c0, True, *_first(xs_s, tg_s, m_s))
        )[0]
        l0 = jnp.zeros(loss_shape.shape, loss_shape.dtype)
        (_, g, loss), _ = loop(body, (c0, zeros, l0), (jnp.arange(n), xs_s, tg_s, m_s))
        return loss, g

    compiled = jax.jit(truncated)

    def grad_fn(params, xs, targets, carry0=None, *, mask=None, key=None):
        del key  # deterministic (the common call of every method)
        T = check_sequence_args(cell, params, xs, targets, carry0, mask)
        return compiled(params, xs, targets, carry0, as_mask(mask, T))

    grad_fn.__doc__ = GRAD_FN_DOC
    return grad_fn


def _first(*trees):
    return tuple(jax.tree_util.tree_map(lambda a: a[0], t) for t in trees)
