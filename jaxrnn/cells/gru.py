"""Gated recurrent unit (``torch.nn.GRUCell`` layout, reset applied after the matmul)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxrnn.base import Cell, configured
from jaxrnn.cells._common import check_float_dtype, check_positive_int, gated_weights
from jaxrnn.cells._fused import Gated, GatedWeights, gated_cell
from jaxrnn.initializers import Initializer


class GRUParams(NamedTuple):
    """GRU parameters, gates stacked in the order ``r, z, n``.

    ``w_ih (3H, I)``, ``w_hh (3H, H)``, ``b_ih (3H,)``, ``b_hh (3H,)`` (biases ``None``
    when built with ``bias=False``). Row block ``k`` of each tensor belongs to gate ``k``.
    """

    w_ih: jax.Array
    w_hh: jax.Array
    b_ih: jax.Array | None
    b_hh: jax.Array | None


@configured("gru")
def gru(
    input_size: int,
    hidden_size: int,
    *,
    bias: bool = True,
    dtype=jnp.float32,
    input_init: Initializer | None = None,
    recurrent_init: Initializer | None = None,
    bias_init: Initializer | None = None,
) -> Cell:
    r"""Gated recurrent unit (Cho et al. 2014), PyTorch ``nn.GRUCell`` form.

    For one example with ``x (I,)`` and carry ``h (H,)``, gate order ``r, z, n``:

    .. math::

        r_t &= \sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr}) \\
        z_t &= \sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz}) \\
        n_t &= \tanh(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn})) \\
        h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}, \qquad y_t = h_t

    The reset gate multiplies ``W_hn h + b_hn`` ("reset after", as in PyTorch, cuDNN
    and Keras ``reset_after=True``), not ``h`` before the matmul as in Cho et al.'s
    original. ``z`` close to 1 keeps the old state (the convention of PyTorch and Keras,
    the opposite of Haiku's).

    Args:
      input_size: ``I``. hidden_size: ``H``.
      bias: if ``False``, ``b_ih`` and ``b_hh`` are ``None``.
      dtype: parameter dtype.
      input_init, recurrent_init, bias_init: ``(key, shape, dtype) -> Array``; the
        default for all is PyTorch's ``U(-1/sqrt(H), 1/sqrt(H))``.

    Returns:
      A :class:`~jaxrnn.Cell` with params :class:`GRUParams`, carry ``h (H,)`` (zeros)
      and output ``y = h (H,)``.
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
        return GRUParams(**w)

    def initial_carry(params):
        return jnp.zeros((H,), params.w_hh.dtype)

    def forward(gi, gh, h, _):
        gi_r, gi_z, gi_n = jnp.split(gi, 3, axis=-1)
        gh_r, gh_z, gh_n = jnp.split(gh, 3, axis=-1)
        r = jax.nn.sigmoid(gi_r + gh_r)
        z = jax.nn.sigmoid(gi_z + gh_z)
        n = jnp.tanh(gi_n + r * gh_n)
        return (1.0 - z) * n + z * h, None, (jnp.concatenate([r, z, n], axis=-1), gh_n)

    def coefficients(res, h):
        gates, gh_n = res
        r, z, n = jnp.split(gates, 3, axis=-1)
        return (r * (1 - r) * gh_n, r, z * (1 - z) * (h - n), (1 - n * n) * (1 - z), z)

    def recurrent(coef, dgh):  # du = dg_i + (dg_h^r, dg_h^z, r dg_h^n)
        r = coef[1]
        dgh_r, dgh_z, dgh_n = jnp.split(dgh, 3, axis=-1)
        return jnp.concatenate([dgh_r, dgh_z, r * dgh_n], axis=-1)

    def tangent(coef, du, dh, _):  # dn = du_n + a_rn du_r
        a_rn, _, a_z, a_n, z = coef
        du_r, du_z, du_n = jnp.split(du, 3, axis=-1)
        return a_n * (du_n + a_rn * du_r) + a_z * du_z + z * dh, None

    spec = Gated(
        weights=lambda p: GatedWeights(p.w_ih, p.b_ih, p.w_hh, p.b_hh, None),
        additive=False,
        split=lambda h: (h, None),
        join=lambda h, _: h,
        forward=forward,
        coefficients=coefficients,
        tangent=tangent,
        recurrent=recurrent,
        onednn="gru",
    )
    return gated_cell(spec, init, initial_carry, input_size=input_size, output_size=H)
