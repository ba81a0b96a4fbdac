"""mLSTM (Beck et al. 2024, xLSTM): matrix memory with exponential gating, a covariance
update rule, normaliser and stabiliser states; parallel (attention-like) form."""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxrnn.base import Cell
from jaxrnn.cells._common import check_float_dtype, check_positive_int
from jaxrnn.cells.slstm import check_forget_gate, forget_bias, log_forget
from jaxrnn.initializers import Initializer, pytorch_default


class MLSTMParams(NamedTuple):
    """mLSTM parameters: ``w_q``, ``w_k``, ``w_v``, ``w_o (H, I)`` with biases ``(H,)``;
    the scalar (per head) input and forget gates ``w_i``, ``w_f (K, I)``, ``b_i``,
    ``b_f (K,)``."""

    w_q: jax.Array
    b_q: jax.Array
    w_k: jax.Array
    b_k: jax.Array
    w_v: jax.Array
    b_v: jax.Array
    w_o: jax.Array
    b_o: jax.Array
    w_i: jax.Array
    b_i: jax.Array
    w_f: jax.Array
    b_f: jax.Array


class MLSTMCarry(NamedTuple):
    """Per head: the matrix memory ``C (K, d, d)``, normaliser ``n (K, d)`` and
    stabiliser ``m (K,)``."""

    C: jax.Array
    n: jax.Array
    m: jax.Array


def _tiny(dtype):
    return jnp.asarray(jnp.finfo(dtype).min / 8, dtype)


def mlstm(
    input_size: int,
    hidden_size: int,
    *,
    num_heads: int = 1,
    forget_gate: str = "sigmoid",
    dtype=jnp.float32,
    weight_init: Initializer | None = None,
) -> Cell:
    r"""mLSTM (Beck, Pöppel, Spanring, Auer, Prudnikova, Kopp, Klambauer, Brandstetter &
    Hochreiter 2024, "xLSTM: Extended Long Short-Term Memory", NeurIPS, arXiv
    2405.04517, section 2.3 and appendix A.3).

    For one example with ``x (I,)`` and, per head (``K`` heads of width ``d = H/K``),
    carry ``C (d, d)``, ``n (d,)``, ``m`` (scalar):

    .. math::

        q_t &= W_q x_t + b_q, \quad k_t = \tfrac{1}{\sqrt d} W_k x_t + b_k, \quad
        v_t = W_v x_t + b_v, \quad o_t = \sigma(W_o x_t + b_o), \\
        \tilde\imath_t &= w_i^\top x_t + b_i, \quad
        \log f_t = \log\sigma(w_f^\top x_t + b_f) \ \text{(or the pre-activation
            itself with an exponential forget gate)}, \\
        m_t &= \max(\log f_t + m_{t-1},\ \tilde\imath_t), \quad
        i'_t = \exp(\tilde\imath_t - m_t), \quad f'_t = \exp(\log f_t + m_{t-1} - m_t), \\
        C_t &= f'_t C_{t-1} + i'_t\, v_t k_t^\top, \qquad n_t = f'_t n_{t-1} + i'_t k_t, \\
        h_t &= o_t \odot \frac{C_t q_t}{\max(|n_t^\top q_t|,\ \exp(-m_t))},
        \qquad y_t = h_t,

    the stabilised form of the paper's ``h~_t = C_t q_t / max(|n_t^T q_t|, 1)`` with
    ``i_t = exp(i~_t)`` (appendix A.3: ``C`` and ``n`` are held scaled by
    ``exp(-m_t)``). The gates read the input only, so the whole sequence has the
    paper's parallel form (appendix A.3, the "attention-like" form), which the engine
    uses: with ``F_{ts} = sum_{s<j<=t} log f_j``, ``D_{ts} = F_{ts} + i~_s`` for the
    steps ``s <= t`` of the same episode, and the initial (or reset) state entering as
    a term ``F_t + m_0`` with its own ``C_0 q_t`` and ``n_0^T q_t``,

    .. math::

        m_t = \max(\max_s D_{ts},\ F_t + m_0), \quad
        h_t = o_t \odot \frac{\sum_s e^{D_{ts} - m_t} (q_t^\top k_s) v_s
              + e^{F_t + m_0 - m_t} C_0 q_t}
             {\max(|\sum_s e^{D_{ts} - m_t} q_t^\top k_s + e^{F_t + m_0 - m_t}
              n_0^\top q_t|,\ e^{-m_t})},

    which is exactly the recurrence (the maxima over paths agree), with masks, resets
    and reverse; it costs ``O(T^2 H)`` time and memory (the chunkwise form of later
    work is not implemented). The cell is dense for RTRL (a row of ``W_k`` reaches
    every entry of ``C``). Parameters: ``4H(I + 1) + 2K(I + 1)``.

    Args:
      input_size: ``I``. hidden_size: ``H``, divisible by ``num_heads``.
      num_heads: ``K``.
      forget_gate: ``"sigmoid"`` (default) or ``"exp"``.
      dtype: parameter dtype.
      weight_init: ``(key, shape, dtype) -> Array`` for every weight and the biases of
        ``q, k, v, o``; default PyTorch's ``U(-1/sqrt(H), 1/sqrt(H))``. ``b_i = 0`` and
        ``b_f = linspace(3, 6)`` over the heads.

    Returns:
      A :class:`~jaxrnn.Cell` with params :class:`MLSTMParams`, carry
      :class:`MLSTMCarry` (zeros), output ``y = h (H,)`` and a parallel ``sequence``.
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
    H, K, I = hidden_size, num_heads, input_size
    d = H // K
    scale = 1.0 / math.sqrt(d)

    def init(key):
        ks = jax.random.split(key, 10)
        w = weight_init or pytorch_default(H)
        return MLSTMParams(
            w_q=w(ks[0], (H, I), dtype),
            b_q=w(ks[1], (H,), dtype),
            w_k=w(ks[2], (H, I), dtype),
            b_k=w(ks[3], (H,), dtype),
            w_v=w(ks[4], (H, I), dtype),
            b_v=w(ks[5], (H,), dtype),
            w_o=w(ks[6], (H, I), dtype),
            b_o=w(ks[7], (H,), dtype),
            w_i=w(ks[8], (K, I), dtype),
            b_i=jnp.zeros((K,), dtype),
            w_f=w(ks[9], (K, I), dtype),
            b_f=forget_bias((K,), dtype),
        )

    def initial_carry(params):
        z = jnp.zeros((K,), params.w_q.dtype)
        return MLSTMCarry(jnp.zeros((K, d, d), z.dtype), jnp.zeros((K, d), z.dtype), z)

    def project(params, x):  # x (..., I) -> q, k, v (..., K, d); i~, log f (..., K); o (..., H)
        def heads(a):
            return a.reshape(*a.shape[:-1], K, d)

        q = heads(x @ params.w_q.T + params.b_q)
        k = heads(scale * (x @ params.w_k.T) + params.b_k)
        v = heads(x @ params.w_v.T + params.b_v)
        i_pre = x @ params.w_i.T + params.b_i
        log_f = log_forget(x @ params.w_f.T + params.b_f, forget_gate)
        o = jax.nn.sigmoid(x @ params.w_o.T + params.b_o)
        return q, k, v, i_pre, log_f, o

    def step(params, carry, x):
        q, k, v, i_pre, log_f, o = project(params, x)
        m = jnp.maximum(log_f + carry.m, i_pre)
        i = jnp.exp(i_pre - m)
        f = jnp.exp(log_f + carry.m - m)
        C = f[:, None, None] * carry.C + i[:, None, None] * (v[:, :, None] * k[:, None, :])
        n = f[:, None] * carry.n + i[:, None] * k
        num = jnp.einsum("kij,kj->ki", C, q)
        den = jnp.maximum(jnp.abs(jnp.sum(n * q, -1)), jnp.exp(-m))
        h = o * (num / den[:, None]).reshape(H)
        return MLSTMCarry(C, n, m), h

    def sequence(
        params, xs, carry, *, mask=None, reset=None, reset_carry=None, reverse=False, unroll=1
    ):
        del unroll
        T = xs.shape[0]
        q, k, v, i_pre, log_f, o = project(params, xs)
        valid = mask
        if valid is not None:
            log_f = jnp.where(valid[:, None], log_f, jnp.zeros_like(log_f))
        flip = (lambda a: None if a is None else a[::-1]) if reverse else (lambda a: a)
        q, k, v, i_pre, log_f, o, valid, rst = map(flip, (q, k, v, i_pre, log_f, o, valid, reset))
        steps = jnp.arange(T)
        causal = steps[:, None] >= steps[None, :]  # (t, s): s <= t
        if valid is not None:
            causal = causal & valid[None, :]
        if rst is None:
            seg = jnp.zeros((T,), steps.dtype)
            start = jnp.zeros((T,), steps.dtype)
        else:
            seg = jnp.cumsum(rst.astype(steps.dtype))
            start = jax.lax.cummax(jnp.where(rst, steps, 0))
            causal = causal & (seg[:, None] == seg[None, :])
        cf = jnp.cumsum(log_f, axis=0)  # (T, K): sum_{j <= t} log f_j
        F_ts = cf[:, None, :] - cf[None, :, :]  # sum_{s < j <= t}
        D = jnp.where(causal[:, :, None], F_ts + i_pre[None, :, :], _tiny(cf.dtype))
        F_init = cf - (cf - log_f)[start]  # sum over the episode's steps j <= t

        def initial(field):  # the state each step's episode started from, (T, ...)
            a = getattr(carry, field)
            if rst is None:
                return jnp.broadcast_to(a, (T, *a.shape))
            b = getattr(reset_carry, field)
            first = (seg == 0).reshape((T,) + (1,) * a.ndim)
            return jnp.where(first, a, b)

        C0, n0, m0 = initial("C"), initial("n"), initial("m")
        E = F_init + m0  # (T, K)
        m = jnp.maximum(jnp.max(D, axis=1), E)
        W = jnp.exp(D - m[:, None, :])  # (t, s, K)
        w0 = jnp.exp(E - m)  # (T, K)
        A = W * jnp.einsum("tkd,skd->tsk", q, k)
        num = jnp.einsum("tsk,skd->tkd", A, v) + w0[..., None] * jnp.einsum("tkij,tkj->tki", C0, q)
        den = jnp.sum(A, axis=1) + w0 * jnp.sum(n0 * q, -1)
        h = o * (num / jnp.maximum(jnp.abs(den), jnp.exp(-m))[..., None]).reshape(T, H)
        # the carry after the last processed step
        WL, wL = W[-1], w0[-1]  # (s, K), (K,)
        C_T = jnp.einsum("sk,ski,skj->kij", WL, v, k) + wL[:, None, None] * C0[-1]
        n_T = jnp.einsum("sk,skd->kd", WL, k) + wL[:, None] * n0[-1]
        h = flip(h)
        if mask is not None:
            h = jnp.where(mask[:, None], h, jnp.zeros_like(h))
        return MLSTMCarry(C_T, n_T, m[-1]), h

    return Cell(
        init,
        initial_carry,
        step,
        input_size=input_size,
        output_size=H,
        sequence=sequence,
    )
