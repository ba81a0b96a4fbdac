"""LRU (Orvieto et al. 2023): the linear recurrent unit, complex diagonal, real parameters."""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxrnn.base import Cell
from jaxrnn.cells._common import check_float_dtype, check_positive_int
from jaxrnn.cells._parallel import linear_sequence


class LRUParams(NamedTuple):
    """LRU parameters (all real): ``nu_log``, ``theta_log``, ``gamma_log (N,)``;
    ``b_re``, ``b_im (N, I)``; ``c_re``, ``c_im (O, N)``; ``d (O, I)``."""

    nu_log: jax.Array
    theta_log: jax.Array
    gamma_log: jax.Array
    b_re: jax.Array
    b_im: jax.Array
    c_re: jax.Array
    c_im: jax.Array
    d: jax.Array


class LRUCarry(NamedTuple):
    """The complex state ``h = re + i im`` as two real ``(N,)`` arrays."""

    re: jax.Array
    im: jax.Array


def _eigenvalues(params):
    """``(|lambda|, arg lambda)`` and ``gamma``, all ``(N,)``."""
    return jnp.exp(-jnp.exp(params.nu_log)), jnp.exp(params.theta_log), jnp.exp(params.gamma_log)


def lru(
    input_size: int,
    hidden_size: int,
    *,
    output_size: int | None = None,
    r_min: float = 0.0,
    r_max: float = 1.0,
    max_phase: float = 2 * math.pi,
    dtype=jnp.float32,
) -> Cell:
    r"""Linear Recurrent Unit (Orvieto, Smith, Gu, Fernando, Gulcehre, Pascanu & De 2023,
    "Resurrecting Recurrent Neural Networks for Long Sequences", ICML, arXiv 2303.06349,
    section 3 and appendix A).

    For one example with ``x (I,)`` and complex state ``h (N,)`` (``N = hidden_size``):

    .. math::

        \lambda &= \exp(-\exp(\nu^{\log}) + i \exp(\theta^{\log})), \qquad
        \gamma = \exp(\gamma^{\log}), \\
        h_t &= \lambda \odot h_{t-1} + \gamma \odot (B x_t), \qquad
        B = B_{re} + i B_{im}, \\
        y_t &= \mathrm{Re}(C h_t) + D x_t, \qquad C = C_{re} + i C_{im},

    the stable exponential parameterisation (``|lambda| < 1`` for any ``nu_log``) and the
    normalisation ``gamma`` initialised to ``sqrt(1 - |lambda|^2)`` (trained). All
    parameters are real, and ``step`` runs in real arithmetic on the carry
    ``(re, im)``, so no complex derivative convention is involved. ``D`` is a dense
    ``(O, I)`` matrix as in the paper's section 2 (its reference code uses a diagonal
    ``D`` because ``O = I`` there). The engine runs the sequence as a parallel
    associative scan in complex arithmetic
    (:func:`jaxrnn.cells._parallel.linear_sequence`).

    The state is complex, so ``d h_t / d h_{t-1}`` is ``2 x 2`` block-diagonal (a
    rotation-scaling per unit) and every parameter touches one unit: the cell declares
    ``diagonal=2`` and exact RTRL costs ``O(params)`` per step
    (:mod:`jaxrnn.grad.diagonal`; the online learning of Zucchet et al. 2023), in real
    arithmetic, so no Wirtinger sign convention can go wrong.

    Initialisation (appendix A): ``|lambda| ~`` uniform on the ring
    ``[r_min, r_max]`` of the complex plane, ``arg lambda ~ U(0, max_phase)``;
    ``B_re, B_im ~ N(0, 1/(2I))``; ``C_re, C_im ~ N(0, 1/N)``; ``D ~ N(0, 1/I)``.
    Parameters: ``3N + 2NI + 2ON + OI``.

    Args:
      input_size: ``I``. hidden_size: ``N``, the number of complex state units.
      output_size: ``O`` (default ``N``).
      r_min, r_max: ring of the initial eigenvalues, ``0 <= r_min < r_max <= 1``.
      max_phase: largest initial phase.
      dtype: parameter dtype.

    Returns:
      A :class:`~jaxrnn.Cell` with params :class:`LRUParams`, carry :class:`LRUCarry`
      (zeros), output ``y (O,)`` and a parallel ``sequence``.
    """
    check_positive_int("input_size", input_size)
    check_positive_int("hidden_size", hidden_size)
    O = hidden_size if output_size is None else check_positive_int("output_size", output_size)
    dtype = check_float_dtype("dtype", dtype)
    if not 0 <= r_min < r_max <= 1:
        raise ValueError(f"need 0 <= r_min < r_max <= 1, got r_min={r_min!r}, r_max={r_max!r}")
    if not max_phase > 0:
        raise ValueError(f"max_phase must be positive, got {max_phase!r}")
    N, I = hidden_size, input_size

    def init(key):
        k1, k2, kbr, kbi, kcr, kci, kd = jax.random.split(key, 7)
        tiny = jnp.finfo(dtype).tiny
        u1 = jax.random.uniform(k1, (N,), dtype, tiny, 1.0)
        u2 = jax.random.uniform(k2, (N,), dtype, tiny, 1.0)
        nu_log = jnp.log(-0.5 * jnp.log(u1 * (r_max**2 - r_min**2) + r_min**2))
        normal = jax.random.normal
        return LRUParams(
            nu_log=nu_log,
            theta_log=jnp.log(max_phase * u2),
            gamma_log=0.5 * jnp.log(-jnp.expm1(-2.0 * jnp.exp(nu_log))),
            b_re=normal(kbr, (N, I), dtype) / math.sqrt(2 * I),
            b_im=normal(kbi, (N, I), dtype) / math.sqrt(2 * I),
            c_re=normal(kcr, (O, N), dtype) / math.sqrt(N),
            c_im=normal(kci, (O, N), dtype) / math.sqrt(N),
            d=normal(kd, (O, I), dtype) / math.sqrt(I),
        )

    def initial_carry(params):
        z = jnp.zeros((N,), params.nu_log.dtype)
        return LRUCarry(z, z)

    def output(params, re, im, x):
        return re @ params.c_re.T - im @ params.c_im.T + x @ params.d.T

    def step(params, carry, x):
        mod, phase, gamma = _eigenvalues(params)
        lr, li = mod * jnp.cos(phase), mod * jnp.sin(phase)
        re = lr * carry.re - li * carry.im + gamma * (params.b_re @ x)
        im = lr * carry.im + li * carry.re + gamma * (params.b_im @ x)
        return LRUCarry(re, im), output(params, re, im, x)

    def coef(params, xs):
        mod, phase, gamma = _eigenvalues(params)
        lam = jax.lax.complex(mod * jnp.cos(phase), mod * jnp.sin(phase))
        bu = jax.lax.complex(
            xs @ (gamma[:, None] * params.b_re).T, xs @ (gamma[:, None] * params.b_im).T
        )
        return jnp.broadcast_to(lam, bu.shape), bu

    return Cell(
        init,
        initial_carry,
        step,
        input_size=I,
        output_size=O,
        diagonal=2,
        sequence=linear_sequence(
            coef,
            lambda params, hs, xs: output(params, hs.real, hs.imag, xs),
            to_state=lambda c: jax.lax.complex(c.re, c.im),
            to_carry=lambda h: LRUCarry(h.real, h.imag),
        ),
    )
