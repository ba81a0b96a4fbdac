"""GRU in Cho et al.'s original form: the reset gate multiplies ``h`` before the matmul."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxrnn.base import Cell, configured
from jaxrnn.cells._common import check_float_dtype, check_positive_int, gated_weights
from jaxrnn.initializers import Initializer


class ChoGRUParams(NamedTuple):
    """Original-form GRU parameters, gates stacked ``r, z, n`` as in :class:`GRUParams`.

    ``w_ih (3H, I)``, ``w_hh (3H, H)``, ``b_ih (3H,)``, ``b_hh (3H,)`` (biases ``None``
    when built with ``bias=False``). Same shapes as PyTorch's GRU, but a different
    equation for ``n``, so it is a type of its own (``jaxrnn.to_torch`` refuses it).
    """

    w_ih: jax.Array
    w_hh: jax.Array
    b_ih: jax.Array | None
    b_hh: jax.Array | None


@configured("cho_gru")
def cho_gru(
    input_size: int,
    hidden_size: int,
    *,
    bias: bool = True,
    dtype=jnp.float32,
    input_init: Initializer | None = None,
    recurrent_init: Initializer | None = None,
    bias_init: Initializer | None = None,
) -> Cell:
    r"""Gated recurrent unit in the original form of Cho et al. (EMNLP 2014, eqs. 5-8;
    seed 002's ``h~ = tanh(W x + U (r * h))``): the reset gate is applied to ``h``
    *before* the recurrent product ("reset before", Keras ``reset_after=False``,
    Haiku's GRU).

    For one example with ``x (I,)`` and carry ``h (H,)``, gate order ``r, z, n``:

    .. math::

        r_t &= \sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr}) \\
        z_t &= \sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz}) \\
        n_t &= \tanh(W_{in} x_t + b_{in} + W_{hn} (r_t \odot h_{t-1}) + b_{hn}) \\
        h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}, \qquad y_t = h_t

    :func:`jaxrnn.gru` is the PyTorch/cuDNN form instead, ``n_t = tanh(W_in x + b_in +
    r_t * (W_hn h + b_hn))``; the two agree only when ``r = 1``. Here a row of ``W_hr``
    reaches every unit in one step (through ``W_hn``), so this cell is not Elman-type
    (RFLO refuses it) and SnAp-1 keeps a dense influence for ``W_hr, b_hr, W_ir, b_ir``.
    ``z`` close to 1 keeps the old state (Cho et al.'s and PyTorch's convention).
    Parameters: ``3H(I + H)`` weights plus ``6H`` biases.

    Args:
      input_size: ``I``. hidden_size: ``H``.
      bias: if ``False``, ``b_ih`` and ``b_hh`` are ``None``.
      dtype: parameter dtype.
      input_init, recurrent_init, bias_init: ``(key, shape, dtype) -> Array``; the
        default for all is PyTorch's ``U(-1/sqrt(H), 1/sqrt(H))``.

    Returns:
      A :class:`~jaxrnn.Cell` with params :class:`ChoGRUParams`, carry ``h (H,)``
      (zeros) and output ``y = h (H,)``.
    """
    check_positive_int("input_size", input_size)
    check_positive_int("hidden_size", hidden_size)
    dtype = check_float_dtype("dtype", dtype)
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
        return ChoGRUParams(**w)

    def initial_carry(params):
        return jnp.zeros((H,), params.w_hh.dtype)

    def step(params, h, x):
        gi = params.w_ih @ x
        gh = params.w_hh[: 2 * H] @ h
        if params.b_ih is not None:
            gi = gi + params.b_ih
            gh = gh + params.b_hh[: 2 * H]
        r = jax.nn.sigmoid(gi[:H] + gh[:H])
        z = jax.nn.sigmoid(gi[H : 2 * H] + gh[H:])
        a = params.w_hh[2 * H :] @ (r * h)
        if params.b_hh is not None:
            a = a + params.b_hh[2 * H :]
        n = jnp.tanh(gi[2 * H :] + a)
        h = (1.0 - z) * n + z * h
        return h, h

    return Cell(init, initial_carry, step, input_size=input_size, output_size=H)
