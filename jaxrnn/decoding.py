r"""Autoregressive decoding of a conditional model: greedy, sampling and beam search.

A model exposes one decoding step for one example,

    ``step(state, token) -> (state, logits (V,))``

(the next-token scores after reading ``token``; the state holds everything else: the
recurrent carry, the encoder's memory). From a start state and a start token
``bos`` each decoder emits ``max_len`` tokens; a sequence ends with its first
``eos``, after which ``eos`` is repeated. The score of an output
:math:`w_1 \dots w_m` is :math:`\sum_{j} \log p(w_j \mid w_{<j})` over its tokens up
to and including the first ``eos`` (all ``max_len`` tokens if there is none).
Batches: ``jax.vmap``. All run through :func:`jaxrnn.engine.loop`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxrnn.base import PRNGKey
from jaxrnn.engine import loop

__all__ = ["beam_search", "greedy", "sample", "sequence_log_prob"]

Step = Callable[[Any, jax.Array], tuple[Any, jax.Array]]


def _check(max_len, eos, bos):
    if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1:
        raise ValueError(f"max_len must be a positive integer, got {max_len!r}")
    for name, v in (("eos", eos), ("bos", bos)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"{name} must be a non-negative token id, got {v!r}")


def _emit(step, state, bos, max_len, eos, choose, keys):
    def body(carry, k):
        state, tok, done = carry
        state, logits = step(state, tok)
        new = jnp.where(done, eos, choose(logits, k)).astype(jnp.int32)
        return (state, new, done | (new == eos)), new

    init = (state, jnp.asarray(bos, jnp.int32), jnp.asarray(False))
    _, toks = loop(body, init, keys)
    return toks


def greedy(step: Step, state: Any, *, bos: int, eos: int, max_len: int) -> jax.Array:
    """``max_len`` tokens, each the ``argmax`` of the step's logits; ``(max_len,)``."""
    _check(max_len, eos, bos)
    return _emit(step, state, bos, max_len, eos, lambda z, _: jnp.argmax(z), jnp.zeros(max_len))


def sample(
    step: Step,
    state: Any,
    key: PRNGKey,
    *,
    bos: int,
    eos: int,
    max_len: int,
    temperature: float = 1.0,
) -> jax.Array:
    r"""``max_len`` tokens drawn from :math:`\mathrm{softmax}(z / \tau)`; ``(max_len,)``."""
    _check(max_len, eos, bos)
    if not temperature > 0:
        raise ValueError(f"temperature must be positive (use greedy for 0), got {temperature!r}")
    keys = jax.random.split(key, max_len)
    return _emit(
        step,
        state,
        bos,
        max_len,
        eos,
        lambda z, k: jax.random.categorical(k, z / temperature),
        keys,
    )


def beam_search(
    step: Step, state: Any, *, bos: int, eos: int, max_len: int, beam: int
) -> tuple[jax.Array, jax.Array]:
    r"""Beam search: the ``beam`` best outputs found, best first.

    At every position each of the ``beam`` hypotheses is extended by every token
    (a finished one only by ``eos``, at no cost), and the ``beam`` extensions with the
    largest scores are kept. With ``beam = 1`` this is :func:`greedy`; with ``beam``
    at least ``V^{max_len - 1}`` it is exhaustive search.

    Returns:
      ``(tokens (beam, max_len), scores (beam,))``; hypotheses that could not be
      filled (fewer than ``beam`` candidates) score ``-inf``.
    """
    _check(max_len, eos, bos)
    if isinstance(beam, bool) or not isinstance(beam, int) or beam < 1:
        raise ValueError(f"beam must be a positive integer, got {beam!r}")
    K = beam
    dtype = jax.eval_shape(step, state, jnp.asarray(bos, jnp.int32))[1].dtype
    states = jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (K, *jnp.shape(a))), state)
    scores0 = jnp.full((K,), -jnp.inf, dtype).at[0].set(0.0)

    def body(carry, t):
        states, last, scores, done, toks = carry
        states, logits = jax.vmap(step)(states, last)
        logp = jax.nn.log_softmax(logits, axis=-1)
        V = logp.shape[-1]
        only_eos = jnp.where(jnp.arange(V) == eos, 0.0, -jnp.inf).astype(scores.dtype)
        cand = scores[:, None] + jnp.where(done[:, None], only_eos, logp)
        top, idx = jax.lax.top_k(cand.reshape(-1), K)
        src, tok = idx // V, (idx % V).astype(jnp.int32)
        states = jax.tree_util.tree_map(lambda a: a[src], states)
        toks = toks[src].at[:, t].set(tok)
        done = done[src] | (tok == eos)
        return (states, tok, top, done, toks), None

    init = (
        states,
        jnp.full((K,), bos, jnp.int32),
        scores0,
        jnp.zeros((K,), bool),
        jnp.zeros((K, max_len), jnp.int32),
    )
    (_, _, scores, _, toks), _ = loop(body, init, jnp.arange(max_len))
    return toks, scores


def sequence_log_prob(step: Step, state: Any, tokens: jax.Array, *, bos: int, eos: int):
    r"""The score of ``tokens (L,)`` under teacher forcing: :math:`\sum_j \log
    p(w_j \mid w_{<j})` up to and including the first ``eos`` (all ``L`` if none)."""
    tokens = jnp.asarray(tokens, jnp.int32)
    prev = jnp.concatenate([jnp.asarray([bos], jnp.int32), tokens[:-1]])

    def body(carry, inp):
        state, done = carry
        p, w = inp
        state, logits = step(state, p)
        lp = jax.nn.log_softmax(logits)[w]
        return (state, done | (w == eos)), jnp.where(done, 0.0, lp)

    _, lps = loop(body, (state, jnp.asarray(False)), (prev, tokens))
    return jnp.sum(lps)
