"""sLSTM (Beck et al. 2024, xLSTM): exponential gating with normaliser and stabiliser
states, head-wise block-diagonal recurrence."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxrnn.base import Cell
from jaxrnn.cells._common import check_float_dtype, check_positive_int
from jaxrnn.initializers import Initializer, pytorch_default

FORGET_GATES = ("sigmoid", "exp")


class SLSTMParams(NamedTuple):
    """sLSTM parameters, gates in the order ``i, f, z, o``: ``w (4H, I)``, the head-wise
    recurrent blocks ``r (4, K, d, d)`` (``K`` heads of width ``d = H / K``) and
    ``b (4H,)``."""

    w: jax.Array
    r: jax.Array
    b: jax.Array


class SLSTMCarry(NamedTuple):
    """``c`` (cell), ``n`` (normaliser), ``m`` (stabiliser), ``h`` (output), each ``(H,)``."""

    c: jax.Array
    n: jax.Array
    m: jax.Array
    h: jax.Array


def check_forget_gate(forget_gate: str) -> str:
    if forget_gate not in FORGET_GATES:
        raise ValueError(f"forget_gate must be 'sigmoid' or 'exp', got {forget_gate!r}")
    return forget_gate


def log_forget(f_pre, forget_gate: str):
    """``log f_t``: ``log sigmoid(f~) = -softplus(-f~)`` or ``f~`` (exponential gate)."""
    return -jax.nn.softplus(-f_pre) if forget_gate == "sigmoid" else f_pre


def forget_bias(shape, dtype):
    """The xLSTM forget-gate bias: ``linspace(3, 6)`` over the last axis (long memory)."""
    return jnp.broadcast_to(jnp.linspace(3.0, 6.0, shape[-1], dtype=dtype), shape)


def slstm(
    input_size: int,
    hidden_size: int,
    *,
    num_heads: int = 1,
    forget_gate: str = "sigmoid",
    dtype=jnp.float32,
    input_init: Initializer | None = None,
    recurrent_init: Initializer | None = None,
) -> Cell:
    r"""sLSTM (Beck, Pöppel, Spanring, Auer, Prudnikova, Kopp, Klambauer, Brandstetter &
    Hochreiter 2024, "xLSTM: Extended Long Short-Term Memory", NeurIPS, arXiv
    2405.04517, section 2.2 and appendix A.2).

    For one example with ``x (I,)``, carry ``(c, n, m, h)`` (each ``(H,)``), gates
    ``g in {i, f, z, o}`` with pre-activations
    ``g~_t = W_g x_t + R_g h_{t-1} + b_g``, where ``R_g`` is block-diagonal with one
    ``(d, d)`` block per head (``H = K d``):

    .. math::

        \log f_t &= \log\sigma(\tilde f_t) \ \text{(or } \tilde f_t
            \text{ with an exponential forget gate)}, \qquad
        m_t = \max(\log f_t + m_{t-1},\ \tilde\imath_t), \\
        i'_t &= \exp(\tilde\imath_t - m_t), \qquad
        f'_t = \exp(\log f_t + m_{t-1} - m_t), \\
        c_t &= f'_t c_{t-1} + i'_t \tanh(\tilde z_t), \qquad
        n_t = f'_t n_{t-1} + i'_t, \qquad
        h_t = \sigma(\tilde o_t) \odot c_t / n_t, \qquad y_t = h_t.

    The stabiliser ``m`` rescales ``c`` and ``n`` together, so ``h`` equals the paper's
    unstabilised form (``i_t = exp(i~_t)``, ``c_t = f_t c_{t-1} + i_t z_t``,
    ``n_t = f_t n_{t-1} + i_t``) while no ``exp`` overflows. The carry starts at zeros
    (``n_1 = i'_1 > 0`` after the first step). The recurrence is nonlinear (``h``
    feeds back through ``R``), so the engine scans ``step``; the cell is dense for
    RTRL. The xLSTM block around the cell (group norm, up/down projections,
    convolution) is not part of it. Parameters: ``4HI + 4Hd + 4H``.

    Args:
      input_size: ``I``. hidden_size: ``H``, divisible by ``num_heads``.
      num_heads: ``K``.
      forget_gate: ``"sigmoid"`` (default) or ``"exp"``.
      dtype: parameter dtype.
      input_init, recurrent_init: ``(key, shape, dtype) -> Array`` for ``w`` and ``r``;
        default PyTorch's ``U(-1/sqrt(H), 1/sqrt(H))`` and ``U(-1/sqrt(d), 1/sqrt(d))``.
        ``b`` is zero except the forget gate's ``linspace(3, 6)``.

    Returns:
      A :class:`~jaxrnn.Cell` with params :class:`SLSTMParams`, carry
      :class:`SLSTMCarry` (zeros) and output ``y = h (H,)``.
    """
    check_positive_int("input_size", input_size)
    check_positive_int("hidden_size", hidden_size)
    check_positive_int("num_heads", num_heads)
    if hidden_size % num_heads:
        raise ValueError(
            f"hidden_size ({hidden_size}) must be divisible by num_heads ({num_heads})"
        )
    check_forget_gate(forget_gate)
    dtype = check_float_dtype("dtype", dtype)
    H, K = hidden_size, num_heads
    d = H // K

    def init(key):
        kw, kr = jax.random.split(key)
        b = jnp.zeros((4, H), dtype).at[1].set(forget_bias((H,), dtype))
        return SLSTMParams(
            w=(input_init or pytorch_default(H))(kw, (4 * H, input_size), dtype),
            r=(recurrent_init or pytorch_default(d))(kr, (4, K, d, d), dtype),
            b=b.reshape(4 * H),
        )

    def initial_carry(params):
        z = jnp.zeros((H,), params.w.dtype)
        return SLSTMCarry(z, z, z, z)

    def step(params, carry, x):
        rec = jnp.einsum("gkij,kj->gki", params.r, carry.h.reshape(K, d)).reshape(4 * H)
        i_pre, f_pre, z_pre, o_pre = jnp.split(params.w @ x + rec + params.b, 4)
        log_f = log_forget(f_pre, forget_gate)
        m = jnp.maximum(log_f + carry.m, i_pre)
        i = jnp.exp(i_pre - m)
        f = jnp.exp(log_f + carry.m - m)
        c = f * carry.c + i * jnp.tanh(z_pre)
        n = f * carry.n + i
        h = jax.nn.sigmoid(o_pre) * c / n
        return SLSTMCarry(c, n, m, h), h

    return Cell(init, initial_carry, step, input_size=input_size, output_size=H)
