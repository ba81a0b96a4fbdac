"""A learnable initial state for any cell."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxrnn.base import Cell, configured
from jaxrnn.cells._common import check_cell


class LearnedStateParams(NamedTuple):
    """``cell``: the wrapped cell's parameters; ``carry0``: the learned initial carry
    (a pytree with the structure and shapes of the wrapped cell's carry)."""

    cell: Any
    carry0: Any


@configured("learned_initial_state")
def learned_initial_state(cell: Cell, *, carry_init=None) -> Cell:
    r"""``cell`` with its initial carry learned as a parameter (what Keras users get
    with a trainable initial state and Flax users with ``carry_init``).

    .. math::

        c_0 = \theta_{c_0}, \qquad (c_t, y_t) = \text{step}(\theta, c_{t-1}, x_t)

    The parameters are :class:`LearnedStateParams` ``(cell, carry0)``; every leaf of
    ``carry0`` is trained (a leaf the step reads only as a counter, such as
    :class:`~jaxrnn.cells.ClockworkCarry` ``t``, gets a zero gradient). Gradients reach
    ``carry0`` through BPTT and through RTRL's initial influence ``M_0 = d c_0 /
    d theta``; ``reset`` flags in :func:`jaxrnn.scan` restart from it.

    Args:
      cell: any :class:`~jaxrnn.Cell`.
      carry_init: ``(key, params) -> carry0``; default: the wrapped cell's own
        ``initial_carry`` (zeros for the built-in cells).

    Returns:
      A :class:`~jaxrnn.Cell` with the wrapped cell's step, carry and sizes.
    """
    check_cell("cell", cell)
    if carry_init is not None and not callable(carry_init):
        raise ValueError(f"carry_init must be callable (key, params) -> carry, got {carry_init!r}")

    def init(key):
        k_cell, k_carry = jax.random.split(key)
        p = cell.init(k_cell)
        carry0 = cell.initial_carry(p) if carry_init is None else carry_init(k_carry, p)
        return LearnedStateParams(p, jax.tree_util.tree_map(jnp.asarray, carry0))

    def initial_carry(params):
        return params.carry0

    def step(params, carry, x):
        return cell.step(params.cell, carry, x)

    return Cell(init, initial_carry, step, cell.input_size, cell.output_size, cell.diagonal)
