r"""Gradient diagnostics: hidden-state gradient norms over time and gradient comparison.

- :func:`hidden_grad_norms`: for every step ``t``, the norm of the gradient that BPTT's
  backward pass sends into step ``t`` through the carry: ``dL/dc_{t-1}`` counting the
  paths through steps ``t, t+1, ...`` (``c_{-1}`` is the initial carry). For the tanh
  Elman cell with ``y_t = h_t``, seed 002's backward recursion
  ``dL/dh_t = dL_t/dh_t + dL/dh_{t+1} diag(1 - h_{t+1}^2) W`` makes this entry
  ``||dL/dh_t diag(1 - h_t^2) W||`` (its recurrent term). Its shrinking (vanishing) or
  growing (exploding) geometrically as ``t`` decreases is the gradient problem of
  Bengio et al. (1994) and Pascanu et al. (2013).
- :func:`cosine` and :func:`relative_error`: compare a gradient estimate with a
  reference over whole pytrees (Marschall et al.'s "alignment").
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from jaxrnn.base import Cell
from jaxrnn.engine import inert, loop
from jaxrnn.grad._common import StepLoss, as_mask, check_sequence_args, where_mask

__all__ = ["cosine", "hidden_grad_norms", "relative_error"]


def hidden_grad_norms(
    cell: Cell, step_loss: StepLoss, params, xs, targets, carry0=None, *, mask=None
) -> jax.Array:
    """``(T,)``: entry ``t`` is ``||dL/dc_{t-1}||`` (carry raveled), the total derivative
    of the sequence loss with respect to the carry entering step ``t`` (entry 0: the
    initial carry), i.e. through steps ``t, t+1, ...``; see the module docstring.

    Computed by BPTT: a zero perturbation ``e_t`` is added to the carry just before
    step ``t`` and ``dL/de_t`` is taken.
    """
    T = check_sequence_args(cell, params, xs, targets, carry0, mask)
    return _hidden_grad_norms(cell, step_loss, params, xs, targets, carry0, as_mask(mask, T))


def _hidden_grad_norms(cell, step_loss, params, xs, targets, carry0, mask):
    cell_params, head = params
    carry = cell.initial_carry(cell_params) if carry0 is None else carry0
    c_flat, unravel = ravel_pytree(carry)

    def step(c, inp):  # the cell with a perturbation e_t added to its incoming carry
        x, tgt, e, m = inp
        c = c + e
        new_c, y = cell.step(cell_params, unravel(c), x)
        new_c = ravel_pytree(new_c)[0]
        ell = step_loss(head, y, tgt)
        return where_mask(m, new_c, c), where_mask(m, ell, jnp.zeros_like(ell))

    if mask is not None:
        xs, targets = inert((xs, targets), mask)

    def loss(eps):
        return jnp.sum(loop(step, c_flat, (xs, targets, eps, mask))[1])

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
