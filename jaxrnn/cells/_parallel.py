r"""Parallel whole-sequence paths of the diagonal linear recurrences (``Cell.sequence``).

The cells of this family (``min_gru``, ``min_lstm``, ``lru``, ``rg_lru``) have a state
that obeys, per unit and with coefficients that depend on the inputs only,

.. math::

    h_t = a_t \odot h_{t-1} + b_t, \qquad (a_t, b_t) = \mathrm{coef}(\theta, x_t),

so the whole sequence is one prefix "sum" of the associative operator
``(a_1, b_1) . (a_2, b_2) = (a_1 a_2, a_2 b_1 + b_2)`` (Blelloch 1990), computed by
:func:`jax.lax.associative_scan` in ``O(log T)`` depth, and ``h_t = A_t h_0 + B_t``
with ``(A_t, B_t)`` the prefix up to ``t``. The products never divide, so this form is
stable for any ``T`` (the cumulative-sum form ``h_t = A_t (h_0 + sum_k b_k / A_k)``
is not: ``A_k`` underflows). ``a`` and ``b`` may be complex (the LRU).

For ``b_t > 0`` (minGRU and minLSTM with their positive ``g``) Feng et al. (2024)
run the same recurrence in log space, ``log h_t = logaddexp(log a_t + log h_{t-1},
log b_t)``, which is stable for long sequences in low precision. :func:`log_sequence`
is that scan as an associative operator on ``(log a, log b)``,
``(la_1, lb_1) . (la_2, lb_2) = (la_1 + la_2, logaddexp(la_2 + lb_1, lb_2))``, with
``h_0`` (of any sign) entering linearly: ``h_t = exp(LA_t) h_0 + exp(LB_t)`` (a
segmented scan, with a flag per element, only when there are resets).

Validity follows the engine (:mod:`jaxrnn.engine`), as coefficients:

- ``mask[t]`` false: the identity step, ``a_t = 1``, ``b_t = 0`` (``log b_t`` a finite
  stand-in for ``-inf`` so no ``inf - inf`` reaches a derivative), and ``y_t = 0``;
- ``reset[t]`` (already in processing order): the carry is ``r`` just before step
  ``t``, so ``a_t = 0``, ``b_t = a_t r + b_t``; in log space a segment starts at ``t``
  (a segmented scan) and the segment's start value is ``r`` instead of ``h_0``;
- ``reverse``: the coefficients are flipped, scanned, and the states flipped back.

The outputs are computed for all steps at once from the states:
``y_t = out(params, h_t, x_t)``. Everything is differentiable in both modes (no
custom rules): reverse mode of an associative scan is again an associative scan.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

__all__ = ["linear_sequence", "log_sequence"]


def _flip(tree, reverse: bool):
    return jax.tree_util.tree_map(lambda a: a[::-1], tree) if reverse else tree


def _col(flags):
    return flags[:, None]


def _linear_op(e1, e2):
    a1, b1 = e1
    a2, b2 = e2
    return a1 * a2, a2 * b1 + b2


def _tiny(dtype):
    """A finite stand-in for ``log 0``: ``exp`` of it (and of it plus any ``log a <= 0``)
    is exactly zero, and sums of a few of them do not overflow."""
    return jnp.asarray(jnp.finfo(dtype).min / 8, dtype)


def _log_op(e1, e2):
    la1, lb1 = e1
    la2, lb2 = e2
    return la1 + la2, jnp.logaddexp(la2 + lb1, lb2)


def _segmented_log_op(e1, e2):
    f1, la1, lb1 = e1
    f2, la2, lb2 = e2
    la = jnp.where(f2, la2, la1 + la2)
    lb = jnp.where(f2, lb2, jnp.logaddexp(la2 + lb1, lb2))
    return f1 | f2, la, lb


def _finish(out, params, hs, xs, mask, reverse, to_carry):
    """``(final_carry, ys)`` from the processing-order states ``hs``."""
    final = hs[-1]
    hs = _flip(hs, reverse)
    ys = out(params, hs, xs)
    if mask is not None:
        ys = jnp.where(_col(mask), ys, jnp.zeros_like(ys))
    return to_carry(final), ys


def linear_sequence(
    coef: Callable,
    out: Callable,
    to_state: Callable = lambda c: c,
    to_carry: Callable = lambda h: h,
) -> Callable:
    """``Cell.sequence`` of ``h_t = a_t h_{t-1} + b_t``, ``y_t = out(params, h_t, x_t)``.

    Args:
      coef: ``(params, xs (T, I)) -> (a, b)``, each ``(T, N)`` (real or complex), for
        all steps at once.
      out: ``(params, hs (T, N), xs (T, I)) -> ys (T, O)``.
      to_state, to_carry: the carry as an ``(N,)`` array ``h`` and back (the LRU keeps
        a complex ``h`` as a real pair).

    Returns:
      ``sequence(params, xs, carry, *, mask, reset, reset_carry, reverse, unroll)``
      (``unroll`` is ignored: there is no loop).
    """

    def sequence(
        params, xs, carry, *, mask=None, reset=None, reset_carry=None, reverse=False, unroll=1
    ):
        del unroll
        a, b = coef(params, xs)
        if mask is not None:
            a = jnp.where(_col(mask), a, jnp.ones_like(a))
            b = jnp.where(_col(mask), b, jnp.zeros_like(b))
        if reset is not None:
            r = to_state(reset_carry)
            b = jnp.where(_col(reset), a * r + b, b)
            a = jnp.where(_col(reset), jnp.zeros_like(a), a)
        a, b = _flip((a, b), reverse)
        A, B = jax.lax.associative_scan(_linear_op, (a, b))
        hs = A * to_state(carry) + B
        return _finish(out, params, hs, xs, mask, reverse, to_carry)

    return sequence


def log_sequence(coef: Callable, out: Callable) -> Callable:
    """``Cell.sequence`` of ``h_t = a_t h_{t-1} + b_t`` with ``b_t > 0``, scanned in log
    space (Feng et al. 2024, section 3.3 and appendix B).

    Args:
      coef: ``(params, xs (T, I)) -> (log_a, log_b)``, each ``(T, N)`` real.
      out: ``(params, hs (T, N), xs (T, I)) -> ys (T, O)``.
    """

    def sequence(
        params, xs, carry, *, mask=None, reset=None, reset_carry=None, reverse=False, unroll=1
    ):
        del unroll
        la, lb = coef(params, xs)
        T, N = la.shape
        if mask is not None:
            la = jnp.where(_col(mask), la, jnp.zeros_like(la))
            lb = jnp.where(_col(mask), lb, _tiny(lb.dtype))
        if reset is None:
            la, lb = _flip((la, lb), reverse)
            LA, LB = jax.lax.associative_scan(_log_op, (la, lb))
            start = carry
        else:
            f = jnp.broadcast_to(_col(reset), (T, N))
            f, la, lb = _flip((f, la, lb), reverse)
            F, LA, LB = jax.lax.associative_scan(_segmented_log_op, (f, la, lb))
            start = jnp.where(F, reset_carry, carry)
        hs = jnp.exp(LA) * start + jnp.exp(LB)
        return _finish(out, params, hs, xs, mask, reverse, lambda h: h)

    return sequence
