r"""Masked losses and metrics for sequence models (batched arrays, any leading shape).

Every function takes an optional ``mask`` broadcastable to the per-position loss; the
result is the mean over the positions where the mask is true,

.. math::

    \bar\ell = \frac{\sum_i m_i \ell_i}{\max(1, \sum_i m_i)},

so padded time steps (``t >= length``) contribute nothing. :func:`length_mask` turns
per-example lengths into such a mask.

- :func:`cross_entropy`: softmax cross-entropy with integer labels,
  :math:`\ell = -\log \mathrm{softmax}(z)_y` (``optax.softmax_cross_entropy_with_integer_labels``);
  used for many-to-one classification (``logits (B, C)``, ``labels (B,)``) and
  sequence-to-sequence classification (``logits (B, T, C)``, ``labels (B, T)``).
- :func:`soft_cross_entropy`: cross-entropy with target distributions,
  :math:`\ell = -\sum_c p_c \log \mathrm{softmax}(z)_c`.
- :func:`bits_per_character`: :func:`cross_entropy` divided by :math:`\ln 2`.
- :func:`mse`: :math:`\ell = \frac{1}{D}\sum_d (\hat y_d - y_d)^2` per position.
- :func:`accuracy`: fraction of positions with :math:`\arg\max_c z_c = y`.
- :func:`pool_last`, :func:`pool_mean`: many-to-one readouts of ``ys (T, F)`` for one
  example (last valid step, or the mean over the valid prefix).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import optax

Array = jax.Array

__all__ = [
    "accuracy",
    "bits_per_character",
    "cross_entropy",
    "length_mask",
    "masked_mean",
    "mse",
    "pool_last",
    "pool_mean",
    "soft_cross_entropy",
]


def length_mask(length: Array, T: int) -> Array:
    """Boolean mask ``(*batch, T)`` that is true at ``t < length`` (``length (*batch,)``)."""
    length = jnp.asarray(length)
    return jnp.arange(T, dtype=length.dtype) < length[..., None]


def masked_mean(values: Array, mask: Array | None = None) -> Array:
    """Mean of ``values`` over positions where ``mask`` is true (all when ``mask`` is None).

    ``mask`` is broadcast to ``values``; an all-false mask gives 0.
    """
    if mask is None:
        return jnp.mean(values)
    m = jnp.broadcast_to(jnp.asarray(mask), values.shape).astype(values.dtype)
    return jnp.sum(values * m) / jnp.maximum(jnp.sum(m), jnp.ones((), values.dtype))


def _check_labels(logits: Array, labels: Array) -> None:
    if jnp.shape(labels) != jnp.shape(logits)[:-1]:
        raise ValueError(
            f"labels must have shape {jnp.shape(logits)[:-1]} (logits without the class "
            f"axis), got {jnp.shape(labels)}"
        )


def cross_entropy(logits: Array, labels: Array, mask: Array | None = None) -> Array:
    r"""Mean softmax cross-entropy :math:`-\log \mathrm{softmax}(z)_y` over unmasked positions.

    Args:
      logits: ``(..., C)`` unnormalised scores.
      labels: integer ``(...)`` class indices.
      mask: optional boolean broadcastable to ``(...)``.
    """
    _check_labels(logits, labels)
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    return masked_mean(losses, mask)


def soft_cross_entropy(logits: Array, targets: Array, mask: Array | None = None) -> Array:
    r"""Mean :math:`-\sum_c p_c \log \mathrm{softmax}(z)_c` for target distributions ``p``.

    ``logits`` and ``targets`` are ``(..., C)``; ``mask`` broadcasts to ``(...)``.
    """
    if jnp.shape(targets) != jnp.shape(logits):
        raise ValueError(
            f"targets must have the shape of logits {jnp.shape(logits)}, got {jnp.shape(targets)}"
        )
    losses = optax.softmax_cross_entropy(logits, targets)
    return masked_mean(losses, mask)


def bits_per_character(logits: Array, labels: Array, mask: Array | None = None) -> Array:
    r"""Cross-entropy in bits: :func:`cross_entropy` :math:`/ \ln 2`."""
    return cross_entropy(logits, labels, mask) / math.log(2.0)


def mse(predictions: Array, targets: Array, mask: Array | None = None) -> Array:
    r"""Mean squared error :math:`\frac{1}{D}\sum_d (\hat y_d - y_d)^2` over unmasked positions.

    ``predictions`` and ``targets`` have the same shape ``(..., D)``; ``mask``
    broadcasts to ``(...)``.
    """
    if jnp.shape(predictions) != jnp.shape(targets):
        raise ValueError(
            f"targets must have the shape of predictions {jnp.shape(predictions)}, "
            f"got {jnp.shape(targets)}"
        )
    per_pos = jnp.mean(jnp.square(predictions - targets), axis=-1)
    return masked_mean(per_pos, mask)


def accuracy(logits: Array, labels: Array, mask: Array | None = None) -> Array:
    """Fraction of unmasked positions where ``argmax(logits, -1) == labels``."""
    _check_labels(logits, labels)
    labels = jnp.asarray(labels)
    hits = (jnp.argmax(logits, axis=-1).astype(labels.dtype) == labels).astype(logits.dtype)
    return masked_mean(hits, mask)


def pool_last(ys: Array, length: Array | int | None = None) -> Array:
    """``ys[length - 1]`` for one example (``ys (T, F)``): the output at the last valid step."""
    if length is None:
        return ys[-1]
    return jnp.take(ys, jnp.asarray(length) - 1, axis=0)


def pool_mean(ys: Array, length: Array | int | None = None) -> Array:
    """Mean of ``ys[:length]`` for one example (``ys (T, F)``)."""
    if length is None:
        return jnp.mean(ys, axis=0)
    length = jnp.asarray(length)
    m = (jnp.arange(ys.shape[0], dtype=length.dtype) < length).astype(ys.dtype)
    return jnp.sum(ys * m[:, None], axis=0) / jnp.sum(m)
