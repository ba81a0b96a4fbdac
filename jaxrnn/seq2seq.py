r"""Sequence to sequence: an encoder-decoder whose decoder starts from a state
conditioned on the encoder (Sutskever, Vinyals & Le 2014; Cho et al. 2014; the seeds'
"conditional RNN"), optionally with additive attention (Bahdanau, Cho & Bengio 2015).

For one example, a source ``u_1..u_S`` (token ids, embedded by ``E_src``, or feature
vectors such as the rows of an image) and a target ``w_1..w_T`` (ids; ``w_T`` the end
token):

.. math::

    m_1..m_S &= \mathrm{Encoder}(u_1..u_S) \quad (\text{bidirectional: } m_s =
        [\overrightarrow{h}_s; \overleftarrow{h}_s]) \\
    \bar m &= [\overrightarrow{h}_S; \overleftarrow{h}_1] \ (\text{or } h_S), \qquad
    s_0 = \tanh(W_b \bar m + b_b) \ \text{per carry leaf (conditional_state)} \\
    \text{without attention:}\quad s_t &= \mathrm{step}(s_{t-1}, E w_{t-1}), \qquad
        z_t = W_o h_t + b_o \\
    \text{with attention:}\quad e_{ts} &= v^\top \tanh(W_a h_{t-1} + U_a m_s + b_a),
        \quad \alpha_{ts} = \mathrm{softmax}_s(e_{ts}), \quad c_t = \textstyle\sum_s
        \alpha_{ts} m_s \\
    s_t &= \mathrm{step}(s_{t-1}, [E w_{t-1}; c_t]), \qquad z_t = W_o [h_t; c_t] + b_o

with ``w_0`` the start token, ``h_t`` the decoder's output and the softmax over the
valid source positions. Training is teacher forcing: the cross-entropy of ``z_t``
against ``w_t``; inference feeds the model's own tokens back (:mod:`jaxrnn.decoding`:
greedy, sampling, beam search).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxrnn import decoding
from jaxrnn.base import Array, PRNGKey
from jaxrnn.cells.conditional import conditional_state
from jaxrnn.engine import loop, run
from jaxrnn.losses import cross_entropy, length_mask, pool_last
from jaxrnn.models import linear, make_cell, make_layer

__all__ = ["AttentionParams", "Memory", "Seq2Seq", "Seq2SeqParams", "encoder_decoder"]


class AttentionParams(NamedTuple):
    """Additive attention: ``w_a (A, H)`` (decoder state), ``u_a (A, M)`` (memory),
    ``b_a (A,)``, ``v (A,)``."""

    w_a: Array
    u_a: Array
    b_a: Array
    v: Array


class Seq2SeqParams(NamedTuple):
    """``src_embed (V_src, D)`` or ``None`` (feature sources), ``encoder`` (layer),
    ``bridge`` (:class:`~jaxrnn.cells.StateMapParams`), ``tgt_embed (V, D)``,
    ``decoder`` (cell), ``attention`` (:class:`AttentionParams` or ``None``), ``out``
    (:class:`~jaxrnn.models.HeadParams`)."""

    src_embed: Array | None
    encoder: Any
    bridge: Any
    tgt_embed: Array
    decoder: Any
    attention: AttentionParams | None
    out: Any


class Memory(NamedTuple):
    """What the decoder reads: ``states (S, M)``, their attention keys ``keys (S, A)``
    (``U_a m_s``; ``None`` without attention) and ``mask (S,)``."""

    states: Array
    keys: Array | None
    mask: Array


class Seq2Seq(NamedTuple):
    """An encoder-decoder for one example (batch with ``jax.vmap``).

    Attributes:
      init: ``key -> Seq2SeqParams``.
      encode: ``(params, src, src_len) -> (memory, state0)``.
      step: ``(params, memory) -> step(state, token) -> (state, logits (V,))``, the
        decoding step of :mod:`jaxrnn.decoding`.
      logits: ``(params, src, src_len, tgt (T,)) -> (T, V)`` under teacher forcing.
      loss: ``(params, src, src_len, tgt, tgt_len) -> mean cross-entropy`` over the
        first ``tgt_len`` target tokens.
      greedy, beam_search, sample: ``(params, src, src_len, ...)`` as in
        :mod:`jaxrnn.decoding`, with the model's ``bos`` and ``eos``.
      bos, eos: start and end token ids of the target vocabulary.
    """

    init: Callable[[PRNGKey], Seq2SeqParams]
    encode: Callable
    step: Callable
    logits: Callable
    loss: Callable
    greedy: Callable
    beam_search: Callable
    sample: Callable
    bos: int
    eos: int


def _uniform(key, shape, fan_in, dtype):
    b = 1.0 / math.sqrt(fan_in)
    return jax.random.uniform(key, shape, dtype, -b, b)


def encoder_decoder(
    target_vocab: int,
    hidden_size: int,
    *,
    source_vocab: int | None = None,
    source_features: int | None = None,
    source_length: int | None = None,
    embed_size: int = 32,
    cell: str = "lstm",
    bidirectional: bool = True,
    encoder: str = "rnn",
    attention: bool = False,
    attention_size: int | None = None,
    bos: int = 1,
    eos: int = 0,
    dtype=jnp.float32,
) -> Seq2Seq:
    r"""Build an encoder-decoder (module docstring for the equations).

    Args:
      target_vocab: ``V``, the target vocabulary size (including ``bos`` and ``eos``).
      hidden_size: ``H`` of the encoder (per direction) and of the decoder.
      source_vocab: token sources: their vocabulary size (embedded to
        ``embed_size``). Exactly one of ``source_vocab`` and ``source_features``.
      source_features: feature sources ``(S, F)``: ``F``.
      source_length: ``S``, needed by ``encoder="dense"`` only.
      embed_size: ``D``, token embedding width.
      cell: a :data:`jaxrnn.models.CELLS` name, for the encoder and the decoder.
      bidirectional: bidirectional encoder.
      encoder: ``"rnn"`` (a recurrent layer over the source, default) or, for feature
        sources, ``"dense"``: one vector :math:`m = \tanh(W_e\,\mathrm{vec}(u) + b_e)`
        of width ``M = H`` encodes the whole source (an image encoding, as the CNN
        features of Vinyals et al. 2015's captioner); then ``bidirectional`` is
        ignored and the memory is that one vector.
      attention: additive attention (Bahdanau et al. 2015).
      attention_size: ``A`` (default ``H``).
      bos, eos: start and end token ids.
      dtype: parameter dtype.
    """
    if (source_vocab is None) == (source_features is None):
        raise ValueError("give exactly one of source_vocab (tokens) and source_features")
    for name, v in (
        ("target_vocab", target_vocab),
        ("hidden_size", hidden_size),
        ("embed_size", embed_size),
        ("source_vocab", source_vocab or 1),
        ("source_features", source_features or 1),
    ):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    for name, v in (("bos", bos), ("eos", eos)):
        if not 0 <= v < target_vocab:
            raise ValueError(f"{name} must be a token id in [0, {target_vocab}), got {v!r}")
    if encoder not in ("rnn", "dense"):
        raise ValueError(f"encoder must be 'rnn' or 'dense', got {encoder!r}")
    if encoder == "dense" and (source_features is None or source_length is None):
        raise ValueError(
            "encoder='dense' reads feature sources: give source_features and source_length"
        )
    dense = encoder == "dense"
    bidirectional = bidirectional and not dense
    H, D, V = hidden_size, embed_size, target_vocab
    M = H * (2 if bidirectional else 1)
    A = attention_size or H
    src_in = D if source_vocab is not None else source_features
    if dense:
        enc_init, enc_apply = linear(source_length * source_features, M, dtype=dtype)
    else:
        rnn = make_layer(cell, src_in, H, bidirectional=bidirectional, dtype=dtype)
        enc_init = rnn.init
    decoder = make_cell(cell, D + (M if attention else 0), H, dtype=dtype)
    template = jax.eval_shape(
        decoder.initial_carry, jax.eval_shape(decoder.init, jax.random.key(0))
    )
    bridge = conditional_state(template, M, activation="tanh", dtype=dtype)
    out_init, out_apply = linear(H + (M if attention else 0), V, dtype=dtype)

    def init(key):
        ks = jax.random.split(key, 9)
        src_embed = None
        if source_vocab is not None:
            src_embed = jax.random.normal(ks[0], (source_vocab, D), dtype)
        att = None
        if attention:
            att = AttentionParams(
                _uniform(ks[1], (A, H), H, dtype),
                _uniform(ks[2], (A, M), M, dtype),
                jnp.zeros((A,), dtype),
                _uniform(ks[3], (A,), A, dtype),
            )
        return Seq2SeqParams(
            src_embed,
            enc_init(ks[4]),
            bridge.init(ks[5]),
            jax.random.normal(ks[6], (V, D), dtype),
            decoder.init(ks[7]),
            att,
            out_init(ks[8]),
        )

    def encode(params, src, src_len=None):
        xs = params.src_embed[src] if source_vocab is not None else jnp.asarray(src, dtype)
        S = xs.shape[0]
        src_len = S if src_len is None else src_len
        if dense:
            summary = jnp.tanh(enc_apply(params.encoder, xs.reshape(-1)))
            ms, S, src_len = summary[None], 1, 1
        else:
            _, ms = rnn.apply(params.encoder, xs, length=src_len)
            last = pool_last(ms, src_len)
            summary = jnp.concatenate([last[:H], ms[0, H:]]) if bidirectional else last
        keys = ms @ params.attention.u_a.T if attention else None
        src_len = jnp.asarray(src_len)
        mask = jnp.arange(S, dtype=src_len.dtype) < src_len
        return Memory(ms, keys, mask), bridge.apply(params.bridge, summary)

    def _context(params, memory, h):
        a = params.attention
        e = jnp.tanh(memory.keys + a.w_a @ h + a.b_a) @ a.v
        alpha = jax.nn.softmax(jnp.where(memory.mask, e, -jnp.inf))
        return alpha @ memory.states

    def _h(state):
        return state.h if hasattr(state, "h") else state

    def step(params, memory):
        def one(state, token):
            x = params.tgt_embed[token]
            if attention:
                ctx = _context(params, memory, _h(state))
                state, y = decoder.step(params.decoder, state, jnp.concatenate([x, ctx]))
                return state, out_apply(params.out, jnp.concatenate([y, ctx]))
            state, y = decoder.step(params.decoder, state, x)
            return state, out_apply(params.out, y)

        return one

    def logits(params, src, src_len, tgt):
        memory, state = encode(params, src, src_len)
        prev = jnp.concatenate([jnp.asarray([bos], jnp.int32), jnp.asarray(tgt, jnp.int32)[:-1]])
        if attention:
            _, z = loop(step(params, memory), state, prev)
            return z
        _, ys = run(decoder, params.decoder, params.tgt_embed[prev], state)
        return out_apply(params.out, ys)

    def loss(params, src, src_len, tgt, tgt_len):
        z = logits(params, src, src_len, tgt)
        return cross_entropy(z, jnp.asarray(tgt, jnp.int32), length_mask(tgt_len, z.shape[0]))

    def greedy(params, src, src_len, max_len):
        memory, state = encode(params, src, src_len)
        return decoding.greedy(step(params, memory), state, bos=bos, eos=eos, max_len=max_len)

    def beam_search(params, src, src_len, max_len, beam):
        memory, state = encode(params, src, src_len)
        return decoding.beam_search(
            step(params, memory), state, bos=bos, eos=eos, max_len=max_len, beam=beam
        )

    def sample(params, src, src_len, max_len, key, temperature=1.0):
        memory, state = encode(params, src, src_len)
        return decoding.sample(
            step(params, memory),
            state,
            key,
            bos=bos,
            eos=eos,
            max_len=max_len,
            temperature=temperature,
        )

    return Seq2Seq(init, encode, step, logits, loss, greedy, beam_search, sample, bos, eos)
