"""Variational (time-shared) dropout of inputs and recurrent state (Gal & Ghahramani 2016)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxrnn.base import Cell, PRNGKey, configured
from jaxrnn.cells._common import check_cell, check_rate


class DropoutCarry(NamedTuple):
    """``state``: the wrapped cell's carry; ``input_mask (I,)`` and ``recurrent_mask
    (R,)``: the scaled masks, drawn once per sequence (all ones without a key)."""

    state: Any
    input_mask: jax.Array
    recurrent_mask: jax.Array


def _mask(key, rate, shape, dtype):
    if key is None or rate == 0.0:
        return jnp.ones(shape, dtype)
    keep = jax.random.bernoulli(key, 1.0 - rate, shape)
    return keep.astype(dtype) / jnp.asarray(1.0 - rate, dtype)


@configured("variational_dropout")
def variational_dropout(
    cell: Cell, *, input_rate: float = 0.0, recurrent_rate: float = 0.0
) -> Cell:
    r"""Variational RNN dropout (Gal & Ghahramani, NeurIPS 2016): one dropout mask for the
    inputs and one for the recurrent state, drawn once per sequence and used at every
    step (Keras ``dropout`` / ``recurrent_dropout``).

    With masks :math:`m_x \in \{0, 1/(1-p_x)\}^I` and :math:`m_h \in \{0,
    1/(1-p_h)\}^R` (inverted dropout, so nothing is rescaled at evaluation), the wrapped
    cell's recurrent products read :math:`m_h \odot h_{t-1}` and its input
    :math:`m_x \odot x_t`:

    .. math::

        W_{ih} x_t \to W_{ih} (m_x \odot x_t), \qquad
        W_{hh} h_{t-1} \to W_{hh} (m_h \odot h_{t-1}) = (W_{hh} \,\mathrm{diag}(m_h))\, h_{t-1}

    The recurrent mask is applied, as in Gal & Ghahramani's derivation, to the columns
    of ``w_hh`` (the dropped units' weights), so only the recurrent *products* see it:
    a GRU's ``z * h_{t-1}`` path and an LSTM's ``c`` are untouched, and the carried
    ``h_t`` is the undropped new state. It needs a cell whose parameters have a ``w_hh``
    field (every built-in gated and Elman cell, the Clockwork RNN and the Tree-LSTM);
    input dropout works with any cell. One mask per tensor is Gal & Ghahramani's "tied"
    variant (their LSTM experiments also use one mask per gate).

    The key comes through the carry: ``initial_carry(params, key=None)``. Without a key
    (also :func:`jaxrnn.scan`'s default carry) the masks are ones and the cell equals
    ``cell`` exactly. A ``reset`` flag restarts the wrapped cell's state and keeps the
    sequence's masks (``Cell.reset``). To train, draw the masks per sequence and pass
    the carry::

        cell = jaxrnn.variational_dropout(jaxrnn.lstm(8, 32), input_rate=0.25, recurrent_rate=0.25)
        carry0 = cell.initial_carry(params, key=jax.random.key(1))
        carry, ys = jaxrnn.scan(cell, params, xs, carry0)       # or grad_fn(..., carry0)

    The parameters are the wrapped cell's own. The masks sit in the carry, so every
    gradient method (RTRL included) sees them as constants.

    Args:
      cell: a :class:`~jaxrnn.Cell` with a declared ``input_size``.
      input_rate: :math:`p_x \in [0, 1)`, the probability of dropping an input entry.
      recurrent_rate: :math:`p_h \in [0, 1)`, the same for a unit of the recurrent
        state (requires params with a ``w_hh`` field).

    Returns:
      A :class:`~jaxrnn.Cell` with carry :class:`DropoutCarry`.
    """
    check_cell("cell", cell)
    p_x = check_rate("input_rate", input_rate)
    p_h = check_rate("recurrent_rate", recurrent_rate)
    if cell.input_size is None:
        raise ValueError("cell must declare input_size to be wrapped by variational_dropout")
    r_shape = (0,)
    if p_h > 0:
        shapes = jax.eval_shape(cell.init, jax.random.key(0))
        w_hh = getattr(shapes, "w_hh", None)
        if w_hh is None or len(w_hh.shape) != 2:
            raise ValueError(
                "recurrent_rate > 0 needs a cell whose params have a 2-D w_hh field (the "
                f"recurrent weights), got {type(shapes).__name__}"
            )
        r_shape = (w_hh.shape[1],)

    def initial_carry(params, key: PRNGKey | None = None):
        state = cell.initial_carry(params)
        dt = jax.tree_util.tree_leaves(state)[0].dtype
        k_x = k_h = None
        if key is not None:
            k_x, k_h = jax.random.split(key)
        return DropoutCarry(
            state, _mask(k_x, p_x, (cell.input_size,), dt), _mask(k_h, p_h, r_shape, dt)
        )

    def step(params, carry, x):
        if p_h > 0:
            params = params._replace(w_hh=params.w_hh * carry.recurrent_mask)
        state, y = cell.step(params, carry.state, x * carry.input_mask)
        return carry._replace(state=state), y

    def reset(params, carry):  # a new episode restarts the state and keeps the masks
        return carry._replace(state=cell.restart(params, carry.state))

    return Cell(cell.init, initial_carry, step, cell.input_size, cell.output_size, reset=reset)
