"""minLSTM (Feng et al. 2024): normalised input-only forget and input gates; parallel in
log space."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxrnn.base import Cell, configured
from jaxrnn.cells._common import check_float_dtype, check_positive_int
from jaxrnn.cells._parallel import log_sequence
from jaxrnn.cells.min_gru import g, input_affine, log_g
from jaxrnn.initializers import Initializer, pytorch_default


class MinLSTMParams(NamedTuple):
    """minLSTM parameters, rows stacked in the order ``f, i, h``: ``w_ih (3H, I)``,
    ``b_ih (3H,)`` (``None`` when built with ``bias=False``)."""

    w_ih: jax.Array
    b_ih: jax.Array | None


@configured("min_lstm")
def min_lstm(
    input_size: int,
    hidden_size: int,
    *,
    bias: bool = True,
    dtype=jnp.float32,
    input_init: Initializer | None = None,
    bias_init: Initializer | None = None,
) -> Cell:
    r"""minLSTM (Feng, Tung, Ahmed, Bengio & Hajimirsadeghi 2024, "Were RNNs All We
    Needed?", arXiv 2410.01201, section 3.2 and the log-space version of appendix B).

    For one example with ``x (I,)`` and carry ``h (H,)``, rows ``f, i, h`` of ``w_ih``:

    .. math::

        f_t &= \sigma(W_f x_t + b_f), \quad i_t = \sigma(W_i x_t + b_i), \quad
        \tilde h_t = g(W_h x_t + b_h), \\
        f'_t &= \frac{f_t}{f_t + i_t}, \quad i'_t = \frac{i_t}{f_t + i_t}, \qquad
        h_t = f'_t \odot h_{t-1} + i'_t \odot \tilde h_t, \qquad y_t = h_t,

    with ``g`` of :func:`jaxrnn.min_gru` (``tilde h_t > 0``). The normalised gates make
    the state's scale independent of time. In log space (the paper's
    ``diff = softplus(-k_f) - softplus(-k_i)``): ``log f'_t = -softplus(diff)``,
    ``log i'_t = -softplus(-diff)``, and the sequence runs as the log-space parallel
    scan (:func:`jaxrnn.cells._parallel.log_sequence`). Element-wise
    (``diagonal=True``). Parameters: ``3H(I + 1)`` (``3HI`` without bias).

    Args:
      input_size: ``I``. hidden_size: ``H``.
      bias: if ``False``, ``b_ih`` is ``None``.
      dtype: parameter dtype.
      input_init, bias_init: ``(key, shape, dtype) -> Array``; default PyTorch's
        ``U(-1/sqrt(H), 1/sqrt(H))``.

    Returns:
      A :class:`~jaxrnn.Cell` with params :class:`MinLSTMParams`, carry ``h (H,)``
      (zeros), output ``y = h (H,)``, ``diagonal=True`` and a parallel ``sequence``.
    """
    check_positive_int("input_size", input_size)
    check_positive_int("hidden_size", hidden_size)
    dtype = check_float_dtype("dtype", dtype)
    H = hidden_size
    default = pytorch_default(H)

    def init(key):
        kw, kb = jax.random.split(key)
        return MinLSTMParams(
            w_ih=(input_init or default)(kw, (3 * H, input_size), dtype),
            b_ih=(bias_init or default)(kb, (3 * H,), dtype) if bias else None,
        )

    def initial_carry(params):
        return jnp.zeros((H,), params.w_ih.dtype)

    def step(params, h, x):
        k = input_affine(params, x)
        f, i = jax.nn.sigmoid(k[:H]), jax.nn.sigmoid(k[H : 2 * H])
        h = f / (f + i) * h + i / (f + i) * g(k[2 * H :])
        return h, h

    def coef(params, xs):
        k = input_affine(params, xs)
        diff = jax.nn.softplus(-k[:, :H]) - jax.nn.softplus(-k[:, H : 2 * H])
        return -jax.nn.softplus(diff), -jax.nn.softplus(-diff) + log_g(k[:, 2 * H :])

    return Cell(
        init,
        initial_carry,
        step,
        input_size=input_size,
        output_size=H,
        diagonal=True,
        sequence=log_sequence(coef, lambda params, hs, xs: hs),
    )
