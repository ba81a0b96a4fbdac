"""RG-LRU (De et al. 2024, Griffin): the real-gated linear recurrent unit."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxrnn.base import Cell
from jaxrnn.cells._common import check_float_dtype, check_positive_int
from jaxrnn.cells._parallel import linear_sequence
from jaxrnn.initializers import Initializer, pytorch_default


class RGLRUParams(NamedTuple):
    """RG-LRU parameters: gate weights ``w_a (H, H)``, ``w_x (H, H)``, biases ``b_a (H,)``,
    ``b_x (H,)``, ``lam (H,)`` (``a = sigmoid(lam)``), and ``w_in (H, I)`` when the
    input width ``I`` differs from ``H`` (else ``None``)."""

    w_a: jax.Array
    b_a: jax.Array
    w_x: jax.Array
    b_x: jax.Array
    lam: jax.Array
    w_in: jax.Array | None


def rg_lru(
    input_size: int,
    hidden_size: int,
    *,
    c: float = 8.0,
    min_rad: float = 0.9,
    max_rad: float = 0.999,
    dtype=jnp.float32,
    weight_init: Initializer | None = None,
) -> Cell:
    r"""Real-Gated Linear Recurrent Unit (De, Smith, Fernando et al. 2024, "Griffin:
    Mixing Gated Linear Recurrences with Local Attention for Efficient Language
    Models", arXiv 2402.19427, section 2.4, equations 1-4).

    For one example with ``x (H,)`` and carry ``h (H,)``:

    .. math::

        r_t &= \sigma(W_a x_t + b_a), \qquad i_t = \sigma(W_x x_t + b_x), \\
        a_t &= a^{c\, r_t}, \quad a = \sigma(\Lambda), \quad
        \text{i.e. } \log a_t = -c\, r_t \odot \mathrm{softplus}(-\Lambda), \\
        h_t &= a_t \odot h_{t-1} + \sqrt{1 - a_t^2} \odot (i_t \odot x_t),
        \qquad y_t = h_t,

    with ``c = 8``. When ``input_size != hidden_size`` the cell first applies the linear
    layer of Griffin's recurrent branch, ``x_t <- W_in x_t`` (``W_in (H, I)``, no bias;
    the branch's Conv1D is not part of this cell). The recurrence is linear with
    coefficients that depend on the input only, so the engine runs it as a parallel
    associative scan (:func:`jaxrnn.cells._parallel.linear_sequence`). Without
    ``W_in`` the cell is element-wise (``diagonal=True``: exact RTRL in ``O(params)``);
    with it a row of ``W_in`` reaches every gate, so it is declared dense.
    Unlike recurrentgemma's code, the first step of a sequence is normalised like every
    other (``sqrt(1 - a_t^2)``), as in equation 4.
    Parameters: ``2H^2 + 3H`` (plus ``HI`` with ``W_in``).

    Args:
      input_size: ``I``. hidden_size: ``H``.
      c: the constant of ``a_t = a^{c r_t}``.
      min_rad, max_rad: ``Lambda`` is initialised so that ``a^c ~ U(min_rad, max_rad)``
        (the paper's 0.9 and 0.999).
      dtype: parameter dtype.
      weight_init: for ``W_a``, ``W_x``, ``W_in``, ``b_a``, ``b_x``; default PyTorch's
        ``U(-1/sqrt(H), 1/sqrt(H))``.

    Returns:
      A :class:`~jaxrnn.Cell` with params :class:`RGLRUParams`, carry ``h (H,)``
      (zeros), output ``y = h (H,)`` and a parallel ``sequence``.
    """
    check_positive_int("input_size", input_size)
    check_positive_int("hidden_size", hidden_size)
    dtype = check_float_dtype("dtype", dtype)
    if not (isinstance(c, (int, float)) and c > 0):
        raise ValueError(f"c must be a positive number, got {c!r}")
    if not 0 < min_rad <= max_rad < 1:
        raise ValueError(f"need 0 < min_rad <= max_rad < 1, got {min_rad!r}, {max_rad!r}")
    H = hidden_size
    project = input_size != H
    default = weight_init or pytorch_default(H)

    def init(key):
        ka, kba, kx, kbx, kl, kin = jax.random.split(key, 6)
        u = jax.random.uniform(kl, (H,), dtype, min_rad, max_rad)
        log_a = jnp.log(u) / c
        return RGLRUParams(
            w_a=default(ka, (H, H), dtype),
            b_a=default(kba, (H,), dtype),
            w_x=default(kx, (H, H), dtype),
            b_x=default(kbx, (H,), dtype),
            lam=log_a - jnp.log(-jnp.expm1(log_a)),  # logit(a)
            w_in=default(kin, (H, input_size), dtype) if project else None,
        )

    def initial_carry(params):
        return jnp.zeros((H,), params.lam.dtype)

    def coef(params, x):  # x (..., I) -> a, b (..., H)
        if params.w_in is not None:
            x = x @ params.w_in.T
        r = jax.nn.sigmoid(x @ params.w_a.T + params.b_a)
        i = jax.nn.sigmoid(x @ params.w_x.T + params.b_x)
        log_a = -c * r * jax.nn.softplus(-params.lam)
        return jnp.exp(log_a), jnp.sqrt(-jnp.expm1(2.0 * log_a)) * (i * x)

    def step(params, h, x):
        a, b = coef(params, x)
        h = a * h + b
        return h, h

    return Cell(
        init,
        initial_carry,
        step,
        input_size=input_size,
        output_size=H,
        diagonal=not project,
        sequence=linear_sequence(coef, lambda params, hs, xs: hs),
    )
