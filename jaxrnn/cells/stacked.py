"""Stack cells into one cell with a tuple carry (a deep RNN seen one step at a time)."""

from __future__ import annotations

import jax

from jaxrnn.base import Cell

__all__ = ["stack_cells"]


def stack_cells(*cells: Cell) -> Cell:
    r"""One cell made of ``cells`` applied in series within each time step.

    For layers ``l = 1..L`` with :math:`y^{(0)}_t = x_t`:

    .. math::

        (c^{(l)}_t, y^{(l)}_t) = \text{step}_l(\theta_l, c^{(l)}_{t-1}, y^{(l-1)}_t),
        \qquad y_t = y^{(L)}_t

    (the deep RNN of Graves et al. 2013, without dropout). Params and carry are tuples
    with one entry per layer, so a gradient engine that treats a cell generically (e.g.
    :func:`jaxrnn.grad.rtrl`) handles the stack as one cell with the joint carry.
    The result is dense (``diagonal=False``): a stack of element-wise cells still has
    cross-layer entries in its carry Jacobian.

    Raises:
      ValueError: no cells, or ``output_size`` of layer ``l`` differs from the
        ``input_size`` of layer ``l+1`` (when both are declared).
    """
    if not cells:
        raise ValueError("stack_cells needs at least one cell")
    for k, cell in enumerate(cells):
        if not isinstance(cell, Cell):
            raise ValueError(f"stack_cells: argument {k} must be a Cell, got {type(cell).__name__}")
    for k in range(1, len(cells)):
        prev, cur = cells[k - 1].output_size, cells[k].input_size
        if prev is not None and cur is not None and prev != cur:
            raise ValueError(
                f"cell {k} input_size must equal cell {k - 1} output_size ({prev}), got {cur}"
            )

    def init(key):
        keys = jax.random.split(key, len(cells))
        return tuple(cell.init(k) for cell, k in zip(cells, keys))

    def initial_carry(params):
        return tuple(cell.initial_carry(p) for cell, p in zip(cells, params))

    def step(params, carry, x):
        new = []
        y = x
        for cell, p, c in zip(cells, params, carry):
            c, y = cell.step(p, c, y)
            new.append(c)
        return tuple(new), y

    return Cell(init, initial_carry, step, cells[0].input_size, cells[-1].output_size)
