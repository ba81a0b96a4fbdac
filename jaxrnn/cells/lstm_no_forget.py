"""The 1997 LSTM: no forget gate, the cell state only accumulates (``c_t = c_{t-1} + i g``)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxrnn.base import Cell, configured
from jaxrnn.cells._common import (
    affine,
    check_float_dtype,
    check_forget_bias,
    check_positive_int,
    gated_weights,
    set_forget_bias,
)
from jaxrnn.cells.lstm import LSTMCarry
from jaxrnn.initializers import Initializer


class LSTMNoForgetParams(NamedTuple):
    """1997-LSTM parameters, gates stacked in the order ``i, g, o`` (no forget gate).

    ``w_ih (3H, I)``, ``w_hh (3H, H)``, ``b_ih (3H,)``, ``b_hh (3H,)`` (biases ``None``
    when built with ``bias=False``).
    """

    w_ih: jax.Array
    w_hh: jax.Array
    b_ih: jax.Array | None
    b_hh: jax.Array | None


@configured("lstm_no_forget")
def lstm_no_forget(
    input_size: int,
    hidden_size: int,
    *,
    bias: bool = True,
    input_bias: float | None = None,
    dtype=jnp.float32,
    input_init: Initializer | None = None,
    recurrent_init: Initializer | None = None,
    bias_init: Initializer | None = None,
) -> Cell:
    r"""LSTM without a forget gate: the original LSTM of Hochreiter & Schmidhuber (1997),
    the "standard LSTM" that Gers, Schmidhuber & Cummins (2000, "Learning to forget:
    continual prediction with LSTM") show failing on continual input streams.

    For one example with ``x (I,)`` and carry ``(h (H,), c (H,))``, gate order ``i, g, o``:

    .. math::

        i_t &= \sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi}) \\
        g_t &= \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg}) \\
        o_t &= \sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho}) \\
        c_t &= c_{t-1} + i_t \odot g_t \qquad (\text{the constant error carousel}) \\
        h_t &= o_t \odot \tanh(c_t), \qquad y_t = h_t

    i.e. :func:`jaxrnn.lstm` with the forget gate fixed at ``f_t = 1``. Without a reset
    ``c_t`` can only grow along a stream, which is what the forget gate was introduced
    to fix. The 1997 paper squashes ``g`` to ``[-2, 2]`` and ``tanh(c)`` to ``[-1, 1]``
    with scaled sigmoids (``4σ(z) - 2 = 2 tanh(z/2)``, ``2σ(z) - 1 = tanh(z/2)``) and
    has no recurrent connections inside a memory block beyond those above; here
    both are ``tanh`` as in every modern LSTM, so the two cells differ only in ``f``.
    Parameters: ``3H(I + H)`` weights plus ``6H`` biases.

    Args:
      input_size: ``I``. hidden_size: ``H``.
      bias: if ``False``, ``b_ih`` and ``b_hh`` are ``None``.
      input_bias: effective input-gate bias at initialisation (``b_ih[i] = b``,
        ``b_hh[i] = 0``), or ``None`` (PyTorch's draw). Hochreiter & Schmidhuber
        initialised it negative, so that cells start closed and are not misused
        early ("abuse problem"). Requires ``bias=True``.
      dtype: parameter dtype.
      input_init, recurrent_init, bias_init: ``(key, shape, dtype) -> Array``; the
        default for all is PyTorch's ``U(-1/sqrt(H), 1/sqrt(H))``.

    Returns:
      A :class:`~jaxrnn.Cell` with params :class:`LSTMNoForgetParams`, carry
      :class:`~jaxrnn.LSTMCarry` (zeros) and output ``y = h (H,)``.
    """
    check_positive_int("input_size", input_size)
    check_positive_int("hidden_size", hidden_size)
    dtype = check_float_dtype("dtype", dtype)
    input_bias = check_forget_bias(input_bias, bias, name="input_bias")
    H = hidden_size

    def init(key):
        w = gated_weights(
            key,
            gates=3,
            input_size=input_size,
            hidden_size=H,
            recurrent_size=H,
            bias=bias,
            dtype=dtype,
            input_init=input_init,
            recurrent_init=recurrent_init,
            bias_init=bias_init,
        )
        return LSTMNoForgetParams(**set_forget_bias(w, slice(0, H), input_bias))

    def initial_carry(params):
        dt = params.w_hh.dtype
        return LSTMCarry(jnp.zeros((H,), dt), jnp.zeros((H,), dt))

    def step(params, carry, x):
        gi, gh = affine(params.w_ih, params.b_ih, params.w_hh, params.b_hh, x, carry.h)
        gates = gi + gh
        i = jax.nn.sigmoid(gates[:H])
        g = jnp.tanh(gates[H : 2 * H])
        o = jax.nn.sigmoid(gates[2 * H :])
        c = carry.c + i * g
        h = o * jnp.tanh(c)
        return LSTMCarry(h, c), h

    return Cell(init, initial_carry, step, input_size=input_size, output_size=H)
