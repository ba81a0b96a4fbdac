"""Initialisers for recurrent weights, in the ``jax.nn.initializers`` signature.

Every function here returns ``init(key, shape, dtype) -> Array``, so any
``jax.nn.initializers`` function can be passed wherever these are accepted.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

Initializer = Callable[[jax.Array, tuple[int, ...], jnp.dtype], jax.Array]


def symmetric_uniform(bound: float) -> Initializer:
    """``U(-bound, bound)``; PyTorch's recurrent default uses ``bound = 1/sqrt(hidden_size)``."""

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, minval=-bound, maxval=bound)

    return init


def pytorch_default(hidden_size: int) -> Initializer:
    """PyTorch's initialisation of every RNN/GRU/LSTM tensor: ``U(-1/sqrt(H), 1/sqrt(H))``."""
    return symmetric_uniform(1.0 / math.sqrt(hidden_size))


def orthogonal_blocks(num_gates: int, scale: float = 1.0) -> Initializer:
    """Orthogonal initialisation of each ``(H, H)`` gate block of a ``(G*H, H)`` matrix.

    ``jax.nn.initializers.orthogonal`` applied to the whole ``(G*H, H)`` matrix (as
    Keras and Flax NNX do) leaves no single gate block orthogonal; this initialises each
    block independently (Saxe et al. 2014; Le et al. 2015 for the identity variant).
    """
    ortho = jax.nn.initializers.orthogonal(scale)

    def init(key, shape, dtype=jnp.float32):
        rows, cols = shape
        if rows % num_gates:
            raise ValueError(f"orthogonal_blocks: shape {shape} rows not divisible by {num_gates}")
        keys = jax.random.split(key, num_gates)
        blocks = [ortho(k, (rows // num_gates, cols), dtype) for k in keys]
        return jnp.concatenate(blocks, axis=0)

    return init


def zeros(key, shape, dtype=jnp.float32):
    """All zeros (a bias initialiser)."""
    del key
    return jnp.zeros(shape, dtype)
