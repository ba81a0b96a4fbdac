"""LSTM with a coupled input and forget gate (CIFG): ``i = 1 - f``."""

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


class CIFGLSTMParams(NamedTuple):
    """CIFG-LSTM parameters, gates stacked in the order ``f, g, o`` (no input gate).

    ``w_ih (3H, I)``, ``w_hh (3H, H)``, ``b_ih (3H,)``, ``b_hh (3H,)`` (biases ``None``
    when built with ``bias=False``).
    """

    w_ih: jax.Array
    w_hh: jax.Array
    b_ih: jax.Array | None
    b_hh: jax.Array | None


@configured("cifg_lstm")
def cifg_lstm(
    input_size: int,
    hidden_size: int,
    *,
    bias: bool = True,
    forget_bias: float | None = None,
    dtype=jnp.float32,
    input_init: Initializer | None = None,
    recurrent_init: Initializer | None = None,
    bias_init: Initializer | None = None,
) -> Cell:
    r"""Coupled input-forget gate LSTM (CIFG; Greff et al. 2017, "LSTM: a search space
    odyssey"; one of seed 002's LSTM variants).

    The input gate is tied to the forget gate, ``i_t = 1 - f_t``: the cell forgets
    exactly as much as it writes. For one example with ``x (I,)`` and carry
    ``(h (H,), c (H,))``, gate order ``f, g, o``:

    .. math::

        f_t &= \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf}) \\
        g_t &= \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg}) \\
        o_t &= \sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho}) \\
        c_t &= f_t \odot c_{t-1} + (1 - f_t) \odot g_t \\
        h_t &= o_t \odot \tanh(c_t), \qquad y_t = h_t

    (:func:`jaxrnn.lstm` without its input gate and without peepholes; Greff et al.'s
    CIFG variant also has them.) Parameters: ``3H(I + H)`` weights plus ``6H`` biases.

    Args:
      input_size: ``I``. hidden_size: ``H``.
      bias: if ``False``, ``b_ih`` and ``b_hh`` are ``None``.
      forget_bias: effective forget-gate bias at initialisation (``b_ih[f] = b``,
        ``b_hh[f] = 0``), or ``None``. Requires ``bias=True``.
      dtype: parameter dtype.
      input_init, recurrent_init, bias_init: ``(key, shape, dtype) -> Array``; the
        default for all is PyTorch's ``U(-1/sqrt(H), 1/sqrt(H))``.

    Returns:
      A :class:`~jaxrnn.Cell` with params :class:`CIFGLSTMParams`, carry
      :class:`~jaxrnn.LSTMCarry` (zeros) and output ``y = h (H,)``.
    """
    check_positive_int("input_size", input_size)
    check_positive_int("hidden_size", hidden_size)
    dtype = check_float_dtype("dtype", dtype)
    forget_bias = check_forget_bias(forget_bias, bias)
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
        return CIFGLSTMParams(**set_forget_bias(w, slice(0, H), forget_bias))

    def initial_carry(params):
        dt = params.w_hh.dtype
        return LSTMCarry(jnp.zeros((H,), dt), jnp.zeros((H,), dt))

    def step(params, carry, x):
        gi, gh = affine(params.w_ih, params.b_ih, params.w_hh, params.b_hh, x, carry.h)
        gates = gi + gh
        f = jax.nn.sigmoid(gates[:H])
        g = jnp.tanh(gates[H : 2 * H])
        o = jax.nn.sigmoid(gates[2 * H :])
        c = f * carry.c + (1.0 - f) * g
        h = o * jnp.tanh(c)
        return LSTMCarry(h, c), h

    return Cell(init, initial_carry, step, input_size=input_size, output_size=H)
