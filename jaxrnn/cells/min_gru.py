"""minGRU (Feng et al. 2024): a GRU whose gates read only the input; parallel in log space."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxrnn.base import Cell, configured
from jaxrnn.cells._common import check_float_dtype, check_positive_int
from jaxrnn.cells._parallel import log_sequence
from jaxrnn.initializers import Initializer, pytorch_default


class MinGRUParams(NamedTuple):
    """minGRU parameters, rows stacked in the order ``z, h``: ``w_ih (2H, I)``,
    ``b_ih (2H,)`` (``None`` when built with ``bias=False``)."""

    w_ih: jax.Array
    b_ih: jax.Array | None


def g(a):
    """Feng et al.'s positive activation: ``g(a) = a + 1/2`` for ``a >= 0``, else
    ``sigmoid(a)`` (continuous at 0, always positive)."""
    return jnp.where(a >= 0, jnp.maximum(a, 0) + 0.5, jax.nn.sigmoid(a))


def log_g(a):
    """``log g(a)`` without evaluating ``log`` of a non-positive number in either branch."""
    return jnp.where(a >= 0, jnp.log(jnp.maximum(a, 0) + 0.5), -jax.nn.softplus(-a))


def input_affine(params, x):
    """``x W_ih^T + b_ih`` for one input ``(I,)`` or stacked inputs ``(T, I)`` (the min
    cells' gates read only the input; ``b_ih`` may be ``None``)."""
    k = x @ params.w_ih.T
    return k if params.b_ih is None else k + params.b_ih


@configured("min_gru")
def min_gru(
    input_size: int,
    hidden_size: int,
    *,
    bias: bool = True,
    dtype=jnp.float32,
    input_init: Initializer | None = None,
    bias_init: Initializer | None = None,
) -> Cell:
    r"""minGRU (Feng, Tung, Ahmed, Bengio & Hajimirsadeghi 2024, "Were RNNs All We
    Needed?", arXiv 2410.01201, section 3.1 and the log-space version of appendix B).

    For one example with ``x (I,)`` and carry ``h (H,)``, rows ``z, h`` of ``w_ih``:

    .. math::

        z_t &= \sigma(W_z x_t + b_z), \qquad
        \tilde h_t = g(W_h x_t + b_h), \\
        h_t &= (1 - z_t) \odot h_{t-1} + z_t \odot \tilde h_t, \qquad y_t = h_t,

    with the paper's ``g(a) = a + 1/2`` (``a >= 0``), ``sigmoid(a)`` (``a < 0``), which
    keeps ``tilde h_t > 0`` so the recurrence can run in log space. The gates do not
    read ``h_{t-1}``, so the sequence is one linear recurrence
    ``h_t = a_t h_{t-1} + b_t``, ``log a_t = -softplus(k_z)``,
    ``log b_t = -softplus(-k_z) + log g(k_h)``; the engine runs it as the paper's
    log-space parallel scan (:func:`jaxrnn.cells._parallel.log_sequence`, equal to
    scanning ``step``, with masks, resets and reverse). The cell is element-wise
    (``diagonal=True``): exact RTRL costs ``O(params)`` per step.
    Parameters: ``2H(I + 1)`` (``2HI`` without bias).

    Args:
      input_size: ``I``. hidden_size: ``H``.
      bias: if ``False``, ``b_ih`` is ``None``.
      dtype: parameter dtype.
      input_init, bias_init: ``(key, shape, dtype) -> Array``; default PyTorch's
        ``U(-1/sqrt(H), 1/sqrt(H))``.

    Returns:
      A :class:`~jaxrnn.Cell` with params :class:`MinGRUParams`, carry ``h (H,)``
      (zeros), output ``y = h (H,)``, ``diagonal=True`` and a parallel ``sequence``.
    """
    check_positive_int("input_size", input_size)
    check_positive_int("hidden_size", hidden_size)
    dtype = check_float_dtype("dtype", dtype)
    H = hidden_size
    default = pytorch_default(H)

    def init(key):
        kw, kb = jax.random.split(key)
        return MinGRUParams(
            w_ih=(input_init or default)(kw, (2 * H, input_size), dtype),
            b_ih=(bias_init or default)(kb, (2 * H,), dtype) if bias else None,
        )

    def initial_carry(params):
        return jnp.zeros((H,), params.w_ih.dtype)

    def step(params, h, x):
        k = input_affine(params, x)
        z = jax.nn.sigmoid(k[:H])
        h = (1.0 - z) * h + z * g(k[H:])
        return h, h

    def coef(params, xs):
        k = input_affine(params, xs)
        kz, kh = k[:, :H], k[:, H:]
        return -jax.nn.softplus(kz), -jax.nn.softplus(-kz) + log_g(kh)

    return Cell(
        init,
        initial_carry,
        step,
        input_size=input_size,
        output_size=H,
        diagonal=True,
        sequence=log_sequence(coef, lambda params, hs, xs: hs),
    )
