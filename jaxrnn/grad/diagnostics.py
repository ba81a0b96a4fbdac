r"""Gradient diagnostics: hidden-state gradient norms over time and gradient comparison.

- :func:`hidden_grad_norms`: ``||dL/dc_t||`` for every ``t``, the *total* derivative of
  the sequence loss ``L = sum_t L_t`` with respect to the carry after step ``t``. BPTT's
  backward recursion (seed 002) is
  ``dL/dh_t = dL_t/dh_t + dL/dh_{t+1} diag(1 - h_{t+1}^2) W`` for the tanh Elman cell;
  the norm shrinking (vanishing) or growing (exploding) geometrically as ``t``
  decreases is the gradient problem of Bengio et al. (1994) and Pascanu et al. (2013).
- :func:`cosine` and :func:`relative_error`: compare a gradient estimate with a
  reference over whole pytrees (Marschall et al.'s "alignment").
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from jaxrnn.base import Cell
from jaxrnn.grad._common import StepLoss, as_mask, check_sequence_args

__all__ = ["cosine", "hidden_grad_norms", "relative_error"]


def hidden_grad_norms(
    cell: Cell, step_loss: StepLoss, params, xs, targets, carry0=None, *, mask=None
) -> jax.Array:
    """``(T,)`` Euclidean norms of ``dL/dc_t`` (carry raveled), ``L`` the sequence loss.

    Computed by BPTT: a zero perturbation ``e_t`` is added to each carry after step
    ``t`` and ``dL/de_t`` is taken. Masked steps (carry unchanged) report the gradient
    with respect to the carried-over state.
    """
    T = check_sequence_args(cell, params, xs, targets, carry0, mask)
    return _hidden_grad_norms(cell, step_loss, params, xs, targets, carry0, as_mask(mask, T))


def _hidden_grad_norms(cell, step_loss, params, xs, targets, carry0, mask):
    cell_params, head = params
    carry = cell.initial_carry(cell_params) if carry0 is None else carry0
    c_flat, unravel = ravel_pytree(carry)

    def loss(eps):
        def body(c, inp):
            x, tgt, m, e = inp
            new_c, y = cell.step(cell_params, unravel(c), x)
            new_c = ravel_pytree(new_c)[0]
            ell = step_loss(head, y, tgt)
            c = jnp.where(m, new_c, c) + e
            return c, jnp.where(m, ell, jnp.zeros_like(ell))

        _, ls = jax.lax.scan(body, c_flat, (xs, targets, mask, eps))
        return jnp.sum(ls)

    g = jax.grad(loss)(jnp.zeros((xs.shape[0], c_flat.size), c_flat.dtype))
    return jnp.linalg.norm(g, axis=1)


def _flat(tree):
    return ravel_pytree(tree)[0]


def cosine(a, b) -> jax.Array:
    """Cosine similarity ``<a, b> / (||a|| ||b||)`` of two pytrees of the same structure."""
    fa, fb = _flat(a), _flat(b)
    return jnp.dot(fa, fb) / (jnp.linalg.norm(fa) * jnp.linalg.norm(fb))


def relative_error(estimate, reference) -> jax.Array:
    """``||estimate - reference|| / ||reference||`` over whole pytrees."""
    fa, fb = _flat(estimate), _flat(reference)
    return jnp.linalg.norm(fa - fb) / jnp.linalg.norm(fb)
