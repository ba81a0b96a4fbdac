r"""Connectionist temporal classification (Graves, Fernández, Gomez & Schmidhuber 2006;
Graves, Mohamed & Hinton 2013): loss, decoding and the label error rate.

A network emits per-frame log-probabilities :math:`\log y^t_k` over ``K`` classes,
one of them the blank ``∅``. A path :math:`\pi \in \{0..K-1\}^T` has probability
:math:`\prod_t y^t_{\pi_t}`; the map :math:`\mathcal B` removes repeated labels and
then blanks (``a a ∅ a b b -> a a b``), and a label sequence has

.. math:: p(l \mid x) = \sum_{\pi \in \mathcal B^{-1}(l)} \prod_{t=1}^{T} y^t_{\pi_t}.

- :func:`ctc_loss`: :math:`-\log p(l \mid x)` per sequence by the forward algorithm
  (``optax.ctc_loss``), from lengths rather than padding masks.
- :func:`greedy_decode`: best path decoding, :math:`\mathcal B(\arg\max_k y^t_k)`.
- :func:`prefix_beam_search`: prefix beam search (Graves 2012 §7.5; Hannun et al.
  2014): keeps the ``beam`` most probable label prefixes, each with the probability
  of its paths ending in a blank and in a non-blank; with an unbounded beam it
  returns :math:`\arg\max_l p(l \mid x)` and that probability exactly.
- :func:`edit_distance`, :func:`label_error_rate`: Levenshtein distance and the sum
  of distances over the sum of reference lengths (Graves 2013's error rates).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = [
    "ctc_loss",
    "edit_distance",
    "greedy_decode",
    "label_error_rate",
    "prefix_beam_search",
]


def ctc_loss(
    logits: jax.Array,
    lengths: jax.Array,
    labels: jax.Array,
    label_lengths: jax.Array,
    *,
    blank: int = 0,
) -> jax.Array:
    r"""``-log p(labels | x)`` per sequence, ``(B,)``.

    Args:
      logits: ``(B, T, K)`` unnormalised scores (a log-softmax is applied).
      lengths: ``(B,)`` valid frames of each sequence.
      labels: ``(B, N)`` integer labels, right-padded (any value past the length).
      label_lengths: ``(B,)`` valid labels.
      blank: the blank class.

    A sequence whose labels cannot be aligned in its frames (too short) gets a large
    finite loss (``optax``'s ``log_epsilon``), not ``inf``.
    """
    logits = jnp.asarray(logits)
    if logits.ndim != 3:
        raise ValueError(f"logits must have shape (B, T, K), got {logits.shape}")
    B, T, K = logits.shape
    labels = jnp.asarray(labels)
    if labels.ndim != 2 or labels.shape[0] != B:
        raise ValueError(f"labels must have shape ({B}, N), got {labels.shape}")
    for name, v in (("lengths", lengths), ("label_lengths", label_lengths)):
        if jnp.shape(v) != (B,):
            raise ValueError(f"{name} must have shape ({B},), got {jnp.shape(v)}")
    if not 0 <= blank < K:
        raise ValueError(f"blank must be a class index in [0, {K}), got {blank}")
    dt = logits.dtype
    lengths, label_lengths = jnp.asarray(lengths), jnp.asarray(label_lengths)
    logit_pad = (jnp.arange(T, dtype=lengths.dtype) >= lengths[:, None]).astype(dt)
    label_pad = jnp.arange(labels.shape[1], dtype=label_lengths.dtype) >= label_lengths[:, None]
    labels = jnp.where(label_pad, 0, labels).astype(jnp.int32)
    with jax.numpy_dtype_promotion("standard"):  # optax mixes in float32 constants
        return optax.ctc_loss(logits, logit_pad, labels, label_pad.astype(dt), blank_id=blank)


def greedy_decode(
    logits: jax.Array, lengths: jax.Array | None = None, *, blank: int = 0
) -> tuple[jax.Array, jax.Array]:
    """Best-path decoding: ``B(argmax_k logits[t])`` for each sequence of a batch.

    Args:
      logits: ``(B, T, K)``.
      lengths: ``(B,)`` valid frames (default ``T``).
      blank: the blank class.

    Returns:
      ``(labels (B, T), counts (B,))``: each row holds its ``counts[b]`` decoded labels
      first, then ``-1``.
    """
    logits = jnp.asarray(logits)
    if logits.ndim != 3:
        raise ValueError(f"logits must have shape (B, T, K), got {logits.shape}")
    B, T, _ = logits.shape
    best = jnp.argmax(logits, axis=-1).astype(jnp.int32)
    if lengths is None:
        valid = jnp.ones((B, T), bool)
    else:
        lengths = jnp.asarray(lengths)
        valid = jnp.arange(T, dtype=lengths.dtype) < lengths[:, None]
    prev = jnp.concatenate([jnp.full((B, 1), -1, jnp.int32), best[:, :-1]], axis=1)
    keep = valid & (best != blank) & (best != prev)
    pos = jnp.where(keep, jnp.cumsum(keep, axis=1) - 1, T)
    out = jnp.full((B, T), -1, jnp.int32)
    out = jax.vmap(lambda o, p, v: o.at[p].set(v, mode="drop"))(out, pos, best)
    return out, jnp.sum(keep, axis=1)


def prefix_beam_search(
    log_probs: np.ndarray, beam: int = 8, *, blank: int = 0
) -> tuple[tuple[int, ...], float]:
    r"""CTC prefix beam search over one sequence's per-frame log-probabilities.

    For every prefix ``l`` kept, :math:`p_b(l)` and :math:`p_{nb}(l)` are the
    probabilities of the paths so far that collapse to ``l`` and end in a blank, or in
    ``l``'s last label. At frame ``t`` (``y = y^t``):

    .. math::

        p_b'(l) &= (p_b(l) + p_{nb}(l))\, y_∅, \qquad
        p_{nb}'(l) \mathrel{+}= p_{nb}(l)\, y_{l_{-1}} \\
        p_{nb}'(l k) &\mathrel{+}= \begin{cases} p_b(l)\, y_k & k = l_{-1} \\
                                   (p_b(l) + p_{nb}(l))\, y_k & \text{otherwise}\end{cases}

    after which the ``beam`` prefixes with the largest :math:`p_b + p_{nb}` are kept
    (in log space throughout). Host-side NumPy: decoding is not differentiated.

    Args:
      log_probs: ``(T, K)`` log-probabilities (``jax.nn.log_softmax`` of the logits of
        the valid frames).
      beam: prefixes kept after each frame.
      blank: the blank class.

    Returns:
      ``(labels, log p)``: the most probable prefix found and its log-probability.
    """
    lp = np.asarray(log_probs, np.float64)
    if lp.ndim != 2:
        raise ValueError(f"log_probs must have shape (T, K), got {lp.shape}")
    if isinstance(beam, bool) or not isinstance(beam, int) or beam < 1:
        raise ValueError(f"beam must be a positive integer, got {beam!r}")
    T, K = lp.shape
    if not 0 <= blank < K:
        raise ValueError(f"blank must be a class index in [0, {K}), got {blank}")
    neg = -np.inf
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, neg)}
    for t in range(T):
        y = lp[t]
        nxt: dict[tuple[int, ...], list[float]] = {}

        def add(prefix, b, nb, nxt=nxt):
            cur = nxt.setdefault(prefix, [neg, neg])
            cur[0] = np.logaddexp(cur[0], b)
            cur[1] = np.logaddexp(cur[1], nb)

        for prefix, (pb, pnb) in beams.items():
            total = np.logaddexp(pb, pnb)
            add(prefix, total + y[blank], neg)
            if prefix:
                add(prefix, neg, pnb + y[prefix[-1]])
            for k in range(K):
                if k == blank:
                    continue
                ext = pb if prefix and k == prefix[-1] else total
                add((*prefix, k), neg, ext + y[k])
        ranked = sorted(nxt.items(), key=lambda kv: -np.logaddexp(*kv[1]))
        beams = {p: (v[0], v[1]) for p, v in ranked[:beam]}
    best, (pb, pnb) = max(beams.items(), key=lambda kv: np.logaddexp(*kv[1]))
    return best, float(np.logaddexp(pb, pnb))


def edit_distance(ref: Sequence[int], hyp: Sequence[int]) -> int:
    """Levenshtein distance (substitutions, insertions, deletions, each cost 1)."""
    ref, hyp = list(ref), list(hyp)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        diag, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            diag, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diag + (r != h))
    return row[-1]


def label_error_rate(refs: Sequence[Sequence[int]], hyps: Sequence[Sequence[int]]) -> float:
    """``sum_i edit_distance(refs[i], hyps[i]) / sum_i len(refs[i])``."""
    if len(refs) != len(hyps):
        raise ValueError(f"refs and hyps must have the same length, got {len(refs)}, {len(hyps)}")
    total = sum(len(r) for r in refs)
    if total == 0:
        raise ValueError("refs must contain at least one label")
    return sum(edit_distance(r, h) for r, h in zip(refs, hyps)) / total
