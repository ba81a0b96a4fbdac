"""Layer-normalised LSTM (Ba, Kiros & Hinton 2016)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxrnn.base import Cell, configured
from jaxrnn.cells._common import check_float_dtype, check_positive_int
from jaxrnn.cells.lstm import LSTMCarry
from jaxrnn.initializers import Initializer, pytorch_default


class LayerNormLSTMParams(NamedTuple):
    """Layer-normalised LSTM parameters, gates stacked in the order ``i, f, g, o``.

    ``w_ih (4H, I)``, ``w_hh (4H, H)``, ``b (4H,)`` (``None`` with ``bias=False``); the
    gains and biases of the three normalisations: ``gamma_ih, beta_ih (4H,)`` for
    ``W_ih x``, ``gamma_hh, beta_hh (4H,)`` for ``W_hh h`` and ``gamma_c, beta_c (H,)``
    for ``c``.
    """

    w_ih: jax.Array
    w_hh: jax.Array
    b: jax.Array | None
    gamma_ih: jax.Array
    beta_ih: jax.Array
    gamma_hh: jax.Array
    beta_hh: jax.Array
    gamma_c: jax.Array
    beta_c: jax.Array


def layer_norm(z, gamma, beta, eps):
    """``gamma * (z - mean(z)) / sqrt(var(z) + eps) + beta``, statistics over all of ``z``."""
    mu = jnp.mean(z)
    var = jnp.mean((z - mu) ** 2)
    return gamma * (z - mu) / jnp.sqrt(var + eps) + beta


@configured("layer_norm_lstm")
def layer_norm_lstm(
    input_size: int,
    hidden_size: int,
    *,
    bias: bool = True,
    eps: float = 1e-5,
    dtype=jnp.float32,
    input_init: Initializer | None = None,
    recurrent_init: Initializer | None = None,
    bias_init: Initializer | None = None,
) -> Cell:
    r"""Layer-normalised LSTM (Ba, Kiros & Hinton 2016, "Layer normalization", §3.1 and
    the LSTM equations of their supplementary material).

    The input and recurrent products are normalised separately, each over all ``4H``
    pre-activations, and the cell state is normalised before the output ``tanh``. For
    one example with ``x (I,)`` and carry ``(h (H,), c (H,))``, gate order ``i, f, g, o``:

    .. math::

        (i_t, f_t, g_t, o_t) &= \mathrm{LN}(W_{ih} x_t; \gamma_{ih}, \beta_{ih})
            + \mathrm{LN}(W_{hh} h_{t-1}; \gamma_{hh}, \beta_{hh}) + b \\
        c_t &= \sigma(f_t) \odot c_{t-1} + \sigma(i_t) \odot \tanh(g_t) \\
        h_t &= \sigma(o_t) \odot \tanh(\mathrm{LN}(c_t; \gamma_c, \beta_c)),
            \qquad y_t = h_t \\
        \mathrm{LN}(z; \gamma, \beta) &= \gamma \odot \frac{z - \mu(z)}
            {\sqrt{\mathrm{var}(z) + \epsilon}} + \beta

    with the mean :math:`\mu` and (biased) variance over the entries of ``z``. Ba et al.
    write the gates in the order ``f, i, o, g``; only the stacking order differs.
    The gains start at 1 and the normalisation biases at 0. Normalising ``W_ih x`` over
    its entries removes the scale of ``x``: with ``input_size = 1`` only the sign of
    ``x`` reaches the gates (MNIST-1D, a scalar sequence, trains poorly for that
    reason). Parameters:
    ``4H(I + H)`` weights, ``18H`` gains and normalisation biases, plus ``4H`` for ``b``.

    Args:
      input_size: ``I``. hidden_size: ``H``.
      bias: if ``False``, ``b`` is ``None`` (the ``beta`` terms remain).
      eps: the :math:`\epsilon` inside the square root (default ``1e-5``, as in
        ``torch.nn.LayerNorm``), a positive number.
      dtype: parameter dtype.
      input_init, recurrent_init, bias_init: ``(key, shape, dtype) -> Array`` for
        ``w_ih``, ``w_hh`` and ``b``; the default for all is PyTorch's
        ``U(-1/sqrt(H), 1/sqrt(H))``.

    Returns:
      A :class:`~jaxrnn.Cell` with params :class:`LayerNormLSTMParams`, carry
      :class:`~jaxrnn.LSTMCarry` (zeros) and output ``y = h (H,)``.
    """
    check_positive_int("input_size", input_size)
    check_positive_int("hidden_size", hidden_size)
    dtype = check_float_dtype("dtype", dtype)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
        raise ValueError(f"eps must be a positive number, got {eps!r}")
    eps = float(eps)
    H = hidden_size
    default = pytorch_default(H)

    def init(key):
        k_ih, k_hh, k_b = jax.random.split(key, 3)
        ones4, zeros4 = jnp.ones((4 * H,), dtype), jnp.zeros((4 * H,), dtype)
        return LayerNormLSTMParams(
            w_ih=(input_init or default)(k_ih, (4 * H, input_size), dtype),
            w_hh=(recurrent_init or default)(k_hh, (4 * H, H), dtype),
            b=(bias_init or default)(k_b, (4 * H,), dtype) if bias else None,
            gamma_ih=ones4,
            beta_ih=zeros4,
            gamma_hh=ones4,
            beta_hh=zeros4,
            gamma_c=jnp.ones((H,), dtype),
            beta_c=jnp.zeros((H,), dtype),
        )

    def initial_carry(params):
        dt = params.w_hh.dtype
        return LSTMCarry(jnp.zeros((H,), dt), jnp.zeros((H,), dt))

    def step(params, carry, x):
        p = params
        gates = layer_norm(p.w_ih @ x, p.gamma_ih, p.beta_ih, eps) + layer_norm(
            p.w_hh @ carry.h, p.gamma_hh, p.beta_hh, eps
        )
        if p.b is not None:
            gates = gates + p.b
        i = jax.nn.sigmoid(gates[:H])
        f = jax.nn.sigmoid(gates[H : 2 * H])
        g = jnp.tanh(gates[2 * H : 3 * H])
        o = jax.nn.sigmoid(gates[3 * H :])
        c = f * carry.c + i * g
        h = o * jnp.tanh(layer_norm(c, p.gamma_c, p.beta_c, eps))
        return LSTMCarry(h, c), h

    return Cell(init, initial_carry, step, input_size=input_size, output_size=H)
