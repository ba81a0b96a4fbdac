"""Long short-term memory cell (``torch.nn.LSTM`` layout, optional projection: LSTMP)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxrnn.base import Cell, configured
from jaxrnn.cells._common import (
    check_float_dtype,
    check_forget_bias,
    check_positive_int,
    check_proj_size,
    gated_weights,
    set_forget_bias,
)
from jaxrnn.cells._fused import Gated, GatedWeights, gated_cell
from jaxrnn.initializers import Initializer, pytorch_default


class LSTMParams(NamedTuple):
    """LSTM parameters, gates stacked in the order ``i, f, g, o``.

    ``w_ih (4H, I)``, ``w_hh (4H, R)``, ``b_ih (4H,)``, ``b_hh (4H,)`` and, for LSTMP,
    ``w_hr (P, H)``; ``R = P`` when ``proj_size = P > 0``, else ``R = H``. Absent
    tensors (``bias=False``, ``proj_size=0``) are ``None``.
    """

    w_ih: jax.Array
    w_hh: jax.Array
    b_ih: jax.Array | None
    b_hh: jax.Array | None
    w_hr: jax.Array | None


class LSTMCarry(NamedTuple):
    """LSTM state for one example: ``h (R,)`` (the output) and ``c (H,)`` (the cell)."""

    h: jax.Array
    c: jax.Array


@configured("lstm")
def lstm(
    input_size: int,
    hidden_size: int,
    *,
    proj_size: int = 0,
    bias: bool = True,
    forget_bias: float | None = None,
    dtype=jnp.float32,
    input_init: Initializer | None = None,
    recurrent_init: Initializer | None = None,
    bias_init: Initializer | None = None,
    proj_init: Initializer | None = None,
) -> Cell:
    r"""LSTM with forget gate (Hochreiter & Schmidhuber 1997; Gers et al. 2000),
    PyTorch ``nn.LSTM`` form, with optional output projection (LSTMP, Sak et al. 2014).

    For one example with ``x (I,)`` and carry ``(h (R,), c (H,))``, gate order ``i, f, g, o``:

    .. math::

        i_t &= \sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi}) \\
        f_t &= \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf}) \\
        g_t &= \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg}) \\
        o_t &= \sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho}) \\
        c_t &= f_t \odot c_{t-1} + i_t \odot g_t \\
        h_t &= o_t \odot \tanh(c_t) \quad (\text{LSTMP: } h_t = W_{hr}(o_t \odot \tanh(c_t))),
        \qquad y_t = h_t

    No constant is added to the forget gate in the forward pass. ``forget_bias``
    only changes the initial parameters: with a float ``b``, the forget block of
    ``b_ih`` is set to ``b`` and that of ``b_hh`` to 0, so the effective forget bias at
    initialisation is exactly ``b`` (Gers et al. 2000; Jozefowicz et al. 2015 recommend
    1.0). The default ``None`` keeps PyTorch's initialisation unchanged.

    Args:
      input_size: ``I``. hidden_size: ``H``.
      proj_size: ``P``; ``0`` (default) for no projection, else ``0 < P < H``.
      bias: if ``False``, ``b_ih`` and ``b_hh`` are ``None``.
      forget_bias: effective forget-gate bias at initialisation, or ``None`` (default,
        PyTorch's uniform draw). Requires ``bias=True``.
      dtype: parameter dtype.
      input_init, recurrent_init, bias_init, proj_init: ``(key, shape, dtype) -> Array``;
        the default for all is PyTorch's ``U(-1/sqrt(H), 1/sqrt(H))``.

    Returns:
      A :class:`~jaxrnn.Cell` with params :class:`LSTMParams`, carry
      :class:`LSTMCarry` (zeros) and output ``y = h (R,)``.
    """
    check_positive_int("input_size", input_size)
    check_positive_int("hidden_size", hidden_size)
    dtype = check_float_dtype("dtype", dtype)
    proj_size = check_proj_size(proj_size, hidden_size)
    forget_bias = check_forget_bias(forget_bias, bias)
    H = hidden_size
    R = proj_size or hidden_size

    def init(key):
        k_w, k_r = jax.random.split(key)
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
        w_hr = None
        if proj_size:
            w_hr = (proj_init or pytorch_default(H))(k_r, (proj_size, H), dtype)
        return LSTMParams(**w, w_hr=w_hr)

    def initial_carry(params):
        dt = params.w_hh.dtype
        return LSTMCarry(jnp.zeros((R,), dt), jnp.zeros((H,), dt))

    def forward(z, _, h, c):
        zi, zf, zg, zo = jnp.split(z, 4, axis=-1)
        i, f, g, o = jax.nn.sigmoid(zi), jax.nn.sigmoid(zf), jnp.tanh(zg), jax.nn.sigmoid(zo)
        c_new = f * c + i * g
        return o * jnp.tanh(c_new), c_new, (jnp.concatenate([i, f, g, o], axis=-1), c)

    def coefficients(res, _):
        gates, c = res
        i, f, g, o = jnp.split(gates, 4, axis=-1)
        tc = jnp.tanh(f * c + i * g)
        return (
            i * (1 - i) * g,
            f * (1 - f) * c,
            (1 - g * g) * i,
            f,
            o * (1 - o) * tc,
            o * (1 - tc * tc),
        )

    def tangent(coef, dz, dh, dc):
        a_i, a_f, a_g, f, a_o, b = coef
        dzi, dzf, dzg, dzo = jnp.split(dz, 4, axis=-1)
        dc_new = f * dc + a_i * dzi + a_f * dzf + a_g * dzg
        return a_o * dzo + b * dc_new, dc_new

    spec = Gated(
        weights=lambda p: GatedWeights(p.w_ih, p.b_ih, p.w_hh, p.b_hh, p.w_hr),
        additive=True,
        split=lambda carry: (carry.h, carry.c),
        join=LSTMCarry,
        forward=forward,
        coefficients=coefficients,
        tangent=tangent,
        onednn="lstm",
    )
    return gated_cell(spec, init, initial_carry, input_size=input_size, output_size=R)
