"""Elman recurrent cell (``torch.nn.RNNCell`` layout)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxrnn.base import Cell, configured
from jaxrnn.cells._common import (
    check_float_dtype,
    check_positive_int,
    gated_weights,
    nonlinearity_fn,
)
from jaxrnn.cells._fused import Gated, GatedWeights, gated_cell
from jaxrnn.initializers import Initializer


class RNNParams(NamedTuple):
    """Elman parameters. ``w_ih (H, I)``, ``w_hh (H, H)``, ``b_ih (H,)``, ``b_hh (H,)``.

    The biases are ``None`` when the cell was built with ``bias=False``.
    """

    w_ih: jax.Array
    w_hh: jax.Array
    b_ih: jax.Array | None
    b_hh: jax.Array | None


@configured("rnn")
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

    relu = nonlinearity == "relu"

    def forward(a, _, h, __):
        h = phi(a)
        return h, None, a if relu else h

    def coefficients(res, _):  # phi'(a): 1 - h^2 (tanh), [a > 0] (relu, as jax.nn.relu)
        return (res > 0).astype(res.dtype) if relu else 1 - res * res

    def tangent(coef, da, dh, __):
        return coef * da, None

    spec = Gated(
        weights=lambda p: GatedWeights(p.w_ih, p.b_ih, p.w_hh, p.b_hh, None),
        additive=True,
        split=lambda h: (h, None),
        join=lambda h, _: h,
        forward=forward,
        coefficients=coefficients,
        tangent=tangent,
    )
    return gated_cell(spec, init, initial_carry, input_size=input_size, output_size=hidden_size)
