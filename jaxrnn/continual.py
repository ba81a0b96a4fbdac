r"""Continual prediction (Gers, Schmidhuber & Cummins 2000): train a cell on streams that
are never reset, and test it the paper's way, by how long it predicts without an error.

Training (:func:`fit_continual`) is truncated BPTT over consecutive chunks of ``k``
steps of ``B`` streams read in parallel: the carry at the end of a chunk starts the
next one (no reset inside a stream, whose strings follow each other unmarked) and the
gradient stops at the chunk boundary (TBPTT(k, k)); a stream starts from the
initial state, like the paper's training streams. Each
update minimises the next-symbol cross-entropy

.. math:: L = \frac{1}{Bk} \sum_{b, t} -\log \mathrm{softmax}(W h^b_t + w)_{y^b_t},

with ``(h^b_t, c^b_t) = \mathrm{step}(\theta, (h^b_{t-1}, c^b_{t-1}), x^b_t)``; the
whole run is one compiled loop over the updates.

Testing (:func:`first_error`): the trained network reads one long test stream from
the zero state; at each step it is right when its ``k`` most probable symbols are
the ``k`` legal successors. The result is the number of symbols predicted before
the first error; a run *solves* the task when that is the whole test stream.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxrnn.base import Cell
from jaxrnn.engine import loop, run
from jaxrnn.losses import cross_entropy

__all__ = ["ContinualResult", "correct_steps", "first_error", "fit_continual"]


class ContinualResult(NamedTuple):
    """``params`` after training, the mean loss of every update ``losses (U,)`` and the
    carry the streams ended in."""

    params: Any
    losses: np.ndarray
    carry: Any


def _logits(cell: Cell, head, params, carry, xs, reset=None):
    carry, ys = run(cell, params[0], xs, carry, reset=reset)
    return carry, head(params[1], ys)


def fit_continual(
    cell: Cell,
    head,
    params,
    xs: np.ndarray,
    ys: np.ndarray,
    *,
    chunk: int,
    batch_size: int,
    optimizer: optax.GradientTransformation,
    num_symbols: int,
    reset: np.ndarray | None = None,
) -> ContinualResult:
    """Train ``(cell_params, head_params)`` on never-reset streams by TBPTT(k, k).

    Args:
      cell: a :class:`~jaxrnn.Cell` reading one-hot symbols (``input_size = V``).
      head: ``head(head_params, ys (T, H)) -> logits (T, V)`` (e.g.
        :func:`jaxrnn.models.linear`'s ``apply``).
      params: ``(cell_params, head_params)``.
      xs, ys: symbol indices ``(M, S)``: ``M`` streams of ``S`` inputs and their
        next-symbol targets; ``M`` a multiple of ``batch_size``, ``S`` of ``chunk``.
      chunk: ``k``, steps per update.
      batch_size: ``B``, streams read in parallel; streams ``jB .. (j+1)B - 1`` are
        read together, each from the initial state, in ``S / k`` updates.
      optimizer: an ``optax.GradientTransformation``.
      num_symbols: ``V``.
      reset: optional ``(M, S)`` bool: replace the carry by the initial one just before
        these steps (Gers et al.'s "external reset" at string starts, a baseline that
        is told where strings begin); ``None`` (default) never resets.

    Returns:
      :class:`ContinualResult` after ``(M / B)(S / k)`` updates.
    """
    xs, ys = np.asarray(xs), np.asarray(ys)
    if xs.ndim != 2 or xs.shape != ys.shape:
        raise ValueError(f"xs and ys must both have shape (M, S), got {xs.shape} and {ys.shape}")
    M, S = xs.shape
    for name, v, n in (("chunk", chunk, S), ("batch_size", batch_size, M)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1 or n % v:
            raise ValueError(f"{name} must be a positive divisor of {n}, got {v!r}")
    B, n_chunks = batch_size, S // chunk
    dtype = jax.tree_util.tree_leaves(params)[0].dtype

    def chunks(a):  # (M, S) -> (M/B * S/k, B, k): the updates in training order
        a = a.reshape(M // B, B, n_chunks, chunk).transpose(0, 2, 1, 3)
        return jnp.asarray(a.reshape(-1, B, chunk))

    starts = jnp.asarray(np.arange((M // B) * n_chunks) % n_chunks == 0)
    carry0 = jax.vmap(lambda _: cell.initial_carry(params[0]))(jnp.arange(B))
    if reset is None:
        reset = np.zeros((M, S), bool)
    elif np.shape(reset) != (M, S):
        raise ValueError(f"reset must have shape ({M}, {S}), got {np.shape(reset)}")

    def loss_fn(p, carry, x, y, r):
        onehot = jax.nn.one_hot(x, num_symbols, dtype=dtype)
        carry, z = jax.vmap(lambda c, u, rr: _logits(cell, head, p, c, u, rr))(carry, onehot, r)
        return cross_entropy(z, y.astype(jnp.int32)), carry

    def update(state, batch):
        p, opt_state, carry = state
        x, y, r, start = batch
        carry = jax.tree_util.tree_map(
            lambda c, c0: jnp.where(start, c0, jax.lax.stop_gradient(c)), carry, carry0
        )
        (loss, carry), grads = jax.value_and_grad(loss_fn, has_aux=True)(p, carry, x, y, r)
        with jax.numpy_dtype_promotion("standard"):  # optax's int32 step count
            upd, opt_state = optimizer.update(grads, opt_state, p)
            p = optax.apply_updates(p, upd)
        return (p, opt_state, carry), loss

    @jax.jit
    def train(p, xc, yc, rc, starts):
        with jax.numpy_dtype_promotion("standard"):
            opt_state = optimizer.init(p)
        (p, _, carry), losses = loop(update, (p, opt_state, carry0), (xc, yc, rc, starts))
        return p, losses, carry

    p, losses, carry = train(params, chunks(xs), chunks(ys), chunks(np.asarray(reset)), starts)
    return ContinualResult(p, np.asarray(losses), carry)


def correct_steps(logits: jax.Array, legal: jax.Array) -> jax.Array:
    """Per step: the ``k`` most probable symbols are exactly the ``k`` legal ones.

    ``logits (..., V)``, ``legal (..., V)`` bool; ties are broken by index (stable), so
    a tie never counts twice.
    """
    k = jnp.sum(legal, axis=-1, keepdims=True, dtype=jnp.int32)
    ranks = jnp.argsort(jnp.argsort(-logits, axis=-1, stable=True), axis=-1).astype(jnp.int32)
    return jnp.all((ranks < k) == legal, axis=-1)


def first_error(
    cell: Cell,
    head,
    params,
    xs: np.ndarray,
    legal: np.ndarray,
    carry: Any = None,
    reset: np.ndarray | None = None,
) -> int:
    """Symbols predicted correctly before the first error on one stream (``len(xs)``
    when there is none: the run solves the stream).

    ``xs (N,)`` symbol indices, ``legal (N, V)`` the legal successors; ``carry`` the
    state to start from (default the cell's initial state; pass the state a training
    stream ended in to keep the network running without any reset); ``reset (N,)``
    the external-reset baseline's resets (default none).
    """
    xs, legal = np.asarray(xs), np.asarray(legal)
    if xs.ndim != 1 or legal.shape[:1] != xs.shape:
        raise ValueError(f"xs must be (N,) and legal (N, V), got {xs.shape} and {legal.shape}")
    V = legal.shape[1]
    dtype = jax.tree_util.tree_leaves(params)[0].dtype

    carry = cell.initial_carry(params[0]) if carry is None else carry

    reset = np.zeros(xs.shape, bool) if reset is None else np.asarray(reset, bool)

    @jax.jit
    def ok(p, c, x, lg, r):
        onehot = jax.nn.one_hot(x, V, dtype=dtype)
        _, z = _logits(cell, head, p, c, onehot, r)
        return correct_steps(z, lg)

    good = np.asarray(ok(params, carry, jnp.asarray(xs), jnp.asarray(legal), jnp.asarray(reset)))
    bad = np.flatnonzero(~good)
    return int(bad[0]) if bad.size else len(xs)
