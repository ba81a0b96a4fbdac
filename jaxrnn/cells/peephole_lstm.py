"""LSTM with peephole connections (Gers & Schmidhuber 2000), optional projection."""

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
    check_proj_size,
    gated_weights,
    set_forget_bias,
)
from jaxrnn.cells.lstm import LSTMCarry
from jaxrnn.initializers import Initializer, pytorch_default

_OUTPUT_ACTIVATIONS = {"tanh": jnp.tanh, "identity": lambda c: c}


class PeepholeLSTMParams(NamedTuple):
    """Peephole LSTM parameters, gates stacked in the order ``i, f, g, o``.

    ``w_ih (4H, I)``, ``w_hh (4H, R)``, ``b_ih (4H,)``, ``b_hh (4H,)`` (PyTorch's
    layout), the diagonal peephole weights ``w_ci, w_cf, w_co (H,)`` and, with a
    projection, ``w_hr (P, H)``. Absent tensors (``bias=False``, ``proj_size=0``) are
    ``None``.
    """

    w_ih: jax.Array
    w_hh: jax.Array
    b_ih: jax.Array | None
    b_hh: jax.Array | None
    w_ci: jax.Array
    w_cf: jax.Array
    w_co: jax.Array
    w_hr: jax.Array | None


@configured("peephole_lstm")
def peephole_lstm(
    input_size: int,
    hidden_size: int,
    *,
    proj_size: int = 0,
    bias: bool = True,
    output_activation: str = "tanh",
    forget_bias: float | None = None,
    dtype=jnp.float32,
    input_init: Initializer | None = None,
    recurrent_init: Initializer | None = None,
    bias_init: Initializer | None = None,
    peephole_init: Initializer | None = None,
    proj_init: Initializer | None = None,
) -> Cell:
    r"""LSTM with peephole connections (Gers & Schmidhuber 2000, "Recurrent nets that
    time and count"; seed 003), with optional output projection (LSTMP, Sak et al. 2014).

    The gates also read the cell state through diagonal ("peephole") weights: the input
    and forget gates see ``c_{t-1}``, the output gate sees the new ``c_t``. For one
    example with ``x (I,)`` and carry ``(h (R,), c (H,))``, gate order ``i, f, g, o``:

    .. math::

        i_t &= \sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi} + w_{ci} \odot c_{t-1}) \\
        f_t &= \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf} + w_{cf} \odot c_{t-1}) \\
        g_t &= \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg}) \\
        c_t &= f_t \odot c_{t-1} + i_t \odot g_t \\
        o_t &= \sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho} + w_{co} \odot c_t) \\
        h_t &= o_t \odot \sigma_h(c_t) \quad
        (\text{LSTMP: } h_t = W_{hr}(o_t \odot \sigma_h(c_t))), \qquad y_t = h_t

    with :math:`\sigma_h = \tanh` (default) or the identity (``output_activation=
    "identity"``, the option seed 003 quotes from the peephole paper). Without the
    peephole terms these are exactly :func:`jaxrnn.lstm`'s equations.

    Parameters: ``4H(I + R) + 3H`` weights, plus ``8H`` biases (``bias=True``) and
    ``PH`` projection weights (``proj_size = P > 0``); Sak et al.'s count
    ``4 n_c n_r + 4 n_i n_c + n_c n_r + 3 n_c`` without biases and output layer.

    Args:
      input_size: ``I``. hidden_size: ``H``.
      proj_size: ``P``; ``0`` (default) for no projection, else ``0 < P < H``.
      bias: if ``False``, ``b_ih`` and ``b_hh`` are ``None``.
      output_activation: ``"tanh"`` (default) or ``"identity"``.
      forget_bias: effective forget-gate bias at initialisation (as in
        :func:`jaxrnn.lstm`), or ``None``. Requires ``bias=True``.
      dtype: parameter dtype.
      input_init, recurrent_init, bias_init, peephole_init, proj_init:
        ``(key, shape, dtype) -> Array``; the default for all is PyTorch's
        ``U(-1/sqrt(H), 1/sqrt(H))``.

    Returns:
      A :class:`~jaxrnn.Cell` with params :class:`PeepholeLSTMParams`, carry
      :class:`~jaxrnn.LSTMCarry` (zeros) and output ``y = h (R,)``.
    """
    check_positive_int("input_size", input_size)
    check_positive_int("hidden_size", hidden_size)
    dtype = check_float_dtype("dtype", dtype)
    check_proj_size(proj_size, hidden_size)
    if output_activation not in _OUTPUT_ACTIVATIONS:
        raise ValueError(
            f"output_activation must be 'tanh' or 'identity', got {output_activation!r}"
        )
    forget_bias = check_forget_bias(forget_bias, bias)
    sigma_h = _OUTPUT_ACTIVATIONS[output_activation]
    H = hidden_size
    R = proj_size or hidden_size
    default = pytorch_default(H)

    def init(key):
        k_w, k_p, k_r = jax.random.split(key, 3)
        w = gated_weights(
            k_w,
            gates=4,
            input_size=input_size,
            hidden_size=H,
            recurrent_size=R,
            bias=bias,
            dtype=dtype,
            input_init=input_init,
            recurrent_init=recurrent_init,
            bias_init=bias_init,
        )
        w = set_forget_bias(w, slice(H, 2 * H), forget_bias)
        k_ci, k_cf, k_co = jax.random.split(k_p, 3)
        peep = peephole_init or default
        w_hr = None
        if proj_size:
            w_hr = (proj_init or default)(k_r, (proj_size, H), dtype)
        return PeepholeLSTMParams(
            **w,
            w_ci=peep(k_ci, (H,), dtype),
            w_cf=peep(k_cf, (H,), dtype),
            w_co=peep(k_co, (H,), dtype),
            w_hr=w_hr,
        )

    def initial_carry(params):
        dt = params.w_hh.dtype
        return LSTMCarry(jnp.zeros((R,), dt), jnp.zeros((H,), dt))

    def step(params, carry, x):
        gi, gh = affine(params.w_ih, params.b_ih, params.w_hh, params.b_hh, x, carry.h)
        gates = gi + gh
        i = jax.nn.sigmoid(gates[:H] + params.w_ci * carry.c)
        f = jax.nn.sigmoid(gates[H : 2 * H] + params.w_cf * carry.c)
        g = jnp.tanh(gates[2 * H : 3 * H])
        c = f * carry.c + i * g
        o = jax.nn.sigmoid(gates[3 * H :] + params.w_co * c)
        h = o * sigma_h(c)
        if params.w_hr is not None:
            h = params.w_hr @ h
        return LSTMCarry(h, c), h

    return Cell(init, initial_carry, step, input_size=input_size, output_size=R)
