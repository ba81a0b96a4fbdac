"""Stack cells into one cell with a tuple carry (a deep RNN seen one step at a time)."""

from __future__ import annotations

import jax

from jaxrnn.base import Cell, Projection, configured

__all__ = ["stack_cells"]


@configured("stack_cells")
def stack_cells(*cells: Cell) -> Cell:
    r"""One cell made of ``cells`` applied in series within each time step.

    For layers ``l = 1..L`` with :math:`y^{(0)}_t = x_t`:

    .. math::

        (c^{(l)}_t, y^{(l)}_t) = \text{step}_l(\theta_l, c^{(l)}_{t-1}, y^{(l-1)}_t),
        \qquad y_t = y^{(L)}_t

    (the deep RNN of Graves et al. 2013, without dropout). The stack keeps what its
    cells offer the engine: the first cell's input ``projection``, and a whole-sequence
    ``sequence`` (layer after layer) when every cell has one. Params and carry are tuples
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

    def steps(first_step, params, carry, x):
        new = []
        y = x
        for k, (cell, p, c) in enumerate(zip(cells, params, carry)):
            c, y = (first_step if k == 0 else cell.step)(p, c, y)
            new.append(c)
        return tuple(new), y

    def step(params, carry, x):
        return steps(cells[0].step, params, carry, x)

    projection = None
    if cells[0].projection is not None:
        first = cells[0].projection

        def projected_step(params, carry, u):
            return steps(first.step, params, carry, u)

        projection = Projection(lambda params, x: first.project(params[0], x), projected_step)

    sequence = None
    if all(cell.sequence is not None for cell in cells):

        def sequence(params, xs, carry, *, mask=None, reset=None, reset_carry=None, **kw):
            # Layer by layer over the whole sequence: the same mask and resets for every
            # layer give the same result as stepping all layers at each time step.
            new = []
            ys = xs
            for k, (cell, p, c) in enumerate(zip(cells, params, carry)):
                rc = None if reset_carry is None else reset_carry[k]
                c, ys = cell.sequence(p, ys, c, mask=mask, reset=reset, reset_carry=rc, **kw)
                new.append(c)
            return tuple(new), ys

    reset = None
    if any(cell.reset is not None for cell in cells):

        def reset(params, carry):
            return tuple(cell.restart(p, c) for cell, p, c in zip(cells, params, carry))

    return Cell(
        init,
        initial_carry,
        step,
        cells[0].input_size,
        cells[-1].output_size,
        projection=projection,
        sequence=sequence,
        reset=reset,
    )
