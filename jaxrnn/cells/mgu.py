"""Minimal gated unit (MGU): one forget gate that also resets (Zhou et al. 2016)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxrnn.base import Cell, configured
from jaxrnn.cells._common import check_float_dtype, check_positive_int, gated_weights
from jaxrnn.initializers import Initializer


class MGUParams(NamedTuple):
    """MGU parameters, gates stacked in the order ``f, n``.

    ``w_ih (2H, I)``, ``w_hh (2H, H)``, ``b_ih (2H,)``, ``b_hh (2H,)`` (biases ``None``
    when built with ``bias=False``).
    """

    w_ih: jax.Array
    w_hh: jax.Array
    b_ih: jax.Array | None
    b_hh: jax.Array | None


@configured("mgu")
def mgu(
    input_size: int,
    hidden_size: int,
    *,
    bias: bool = True,
    dtype=jnp.float32,
    input_init: Initializer | None = None,
    recurrent_init: Initializer | None = None,
    bias_init: Initializer | None = None,
) -> Cell:
    r"""Minimal gated unit (Zhou, Wu, Zhang & Zhou 2016, "Minimal gated unit for
    recurrent neural networks"): a GRU whose update and reset gates are one gate ``f``.

    For one example with ``x (I,)`` and carry ``h (H,)``, gate order ``f, n``:

    .. math::

        f_t &= \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf}) \\
        n_t &= \tanh(W_{in} x_t + b_{in} + W_{hn} (f_t \odot h_{t-1}) + b_{hn}) \\
        h_t &= (1 - f_t) \odot h_{t-1} + f_t \odot n_t, \qquad y_t = h_t

    which is the paper's ``h~_t = tanh(W_h [f_t * h_{t-1}, x_t] + b_h)``. Note the
    convention: ``f`` close to 1 *replaces* the state (``f`` plays the role of ``1 - z``
    of :func:`jaxrnn.gru`). ``flax.linen.MGUCell`` is a different variant: it applies
    ``f`` after the recurrent product and keeps the state where ``f`` is close to 1
    (``h_t = (1 - f_t) n_t + f_t h_{t-1}``). A row of ``W_hf`` reaches every unit in one
    step (through ``W_hn``), so the cell is not Elman-type.
    Parameters: ``2H(I + H)`` weights plus ``4H`` biases.

    Args:
      input_size: ``I``. hidden_size: ``H``.
      bias: if ``False``, ``b_ih`` and ``b_hh`` are ``None``.
      dtype: parameter dtype.
      input_init, recurrent_init, bias_init: ``(key, shape, dtype) -> Array``; the
        default for all is PyTorch's ``U(-1/sqrt(H), 1/sqrt(H))``.

    Returns:
      A :class:`~jaxrnn.Cell` with params :class:`MGUParams`, carry ``h (H,)`` (zeros)
      and output ``y = h (H,)``.
    """
    check_positive_int("input_size", input_size)
    check_positive_int("hidden_size", hidden_size)
    dtype = check_float_dtype("dtype", dtype)
    H = hidden_size

    def init(key):
        w = gated_weights(
            key,
            gates=2,
            input_size=input_size,
            hidden_size=H,
            recurrent_size=H,
            bias=bias,
            dtype=dtype,
            input_init=input_init,
            recurrent_init=recurrent_init,
            bias_init=bias_init,
        )
        return MGUParams(**w)

    def initial_carry(params):
        return jnp.zeros((H,), params.w_hh.dtype)

    def step(params, h, x):
        gi = params.w_ih @ x
        if params.b_ih is not None:
            gi = gi + params.b_ih
        b_hf = b_hn = None
        if params.b_hh is not None:
            b_hf, b_hn = params.b_hh[:H], params.b_hh[H:]
        af = params.w_hh[:H] @ h
        if b_hf is not None:
            af = af + b_hf
        f = jax.nn.sigmoid(gi[:H] + af)
        a = params.w_hh[H:] @ (f * h)
        if b_hn is not None:
            a = a + b_hn
        n = jnp.tanh(gi[H:] + a)
        h = (1.0 - f) * h + f * n
        return h, h

    return Cell(init, initial_carry, step, input_size=input_size, output_size=H)
