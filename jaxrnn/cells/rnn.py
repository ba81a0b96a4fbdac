"""Elman recurrent cell (``torch.nn.RNNCell`` layout)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxrnn.base import Cell
from jaxrnn.cells._common import (
    affine,
    check_float_dtype,
    check_positive_int,
    gated_weights,
    nonlinearity_fn,
)
from jaxrnn.initializers import Initializer


class RNNParams(NamedTuple):
    """Elman parameters. ``w_ih (H, I)``, ``w_hh (H, H)``, ``b_ih (H,)``, ``b_hh (H,)``.

    The biases are ``None`` when the cell was built with ``bias=False``.
    """

    w_ih: jax.Array
    w_hh: jax.Array
    b_ih: jax.Array | None
    b_hh: jax.Array | None


def rnn(
    input_size: int,
    hidden_size: int,
    *,
    nonlinearity: str = "tanh",
    bias: bool = True,
    dtype=jnp.float32,
    input_init: Initializer | None = None,
    recurrent_init: Initializer | None = None,
    bias_init: Initializer | None = None,
) -> Cell:
    r"""Elman (simple) recurrent cell (Elman 1990), PyTorch ``nn.RNNCell`` semantics.

    For one example with ``x (I,)`` and carry ``h (H,)``:

    .. math::

        a_t = W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}, \qquad
        h_t = \phi(a_t), \qquad y_t = h_t

    with :math:`\phi` = ``tanh`` or ``relu``. In the notation of the seed notes
    (``a_t = b + W h_{t-1} + U x_t``): ``U = w_ih``, ``W = w_hh``, ``b = b_ih + b_hh``.

    Args:
      input_size: ``I``. hidden_size: ``H``.
      nonlinearity: ``"tanh"`` (default) or ``"relu"``.
      bias: if ``False``, ``b_ih`` and ``b_hh`` are ``None``.
      dtype: parameter dtype.
      input_init, recurrent_init, bias_init: ``(key, shape, dtype) -> Array``; the
        default for all is PyTorch's ``U(-1/sqrt(H), 1/sqrt(H))``.

    Returns:
      A :class:`~jaxrnn.Cell` with params :class:`RNNParams`, carry ``h (H,)`` (zeros),
      and output ``y = h (H,)``.
    """
    check_positive_int("input_size", input_size)
    check_positive_int("hidden_size", hidden_size)
    dtype = check_float_dtype("dtype", dtype)
    phi = nonlinearity_fn(nonlinearity)

    def init(key):
        w = gated_weights(
            key,
            gates=1,
            input_size=input_size,
            hidden_size=hidden_size,
            recurrent_size=hidden_size,
            bias=bias,
            dtype=dtype,
            input_init=input_init,
            recurrent_init=recurrent_init,
            bias_init=bias_init,
        )
        return RNNParams(**w)

    def initial_carry(params):
        return jnp.zeros((hidden_size,), params.w_hh.dtype)

    def step(params, h, x):
        gi, gh = affine(params.w_ih, params.b_ih, params.w_hh, params.b_hh, x, h)
        h = phi(gi + gh)
        return h, h

    return Cell(init, initial_carry, step, input_size=input_size, output_size=hidden_size)
