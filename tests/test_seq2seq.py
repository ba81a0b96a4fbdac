"""Autoregressive decoding and the encoder-decoder: beam search against exhaustive
search and greedy decoding, sampling against the softmax, teacher forcing against a
Python loop of the decoding step, attention's masking, and small learning checks on
number words and digit captions."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrnn import decoding
from jaxrnn.seq2seq import encoder_decoder

F64 = jnp.float64
V, EOS, BOS = 3, 0, 1  # a tiny vocabulary: eos, bos, one symbol


def toy_step(seed, V=V, n=4):
    """A random recurrent decoding step: s' = tanh(W s + E[token]), logits = O s'."""
    rng = np.random.default_rng(seed)
    W, E, O = (jnp.asarray(rng.normal(size=s) * 1.5, F64) for s in ((n, n), (V, n), (V, n)))

    def step(state, token):
        state = jnp.tanh(W @ state + E[token])
        return state, O @ state

    return step, jnp.asarray(rng.normal(size=n), F64)


def score_np(step, state, tokens):
    """log p of tokens up to and including the first EOS, by a Python loop."""
    total, prev = 0.0, BOS
    for w in tokens:
        state, z = step(state, prev)
        z = np.asarray(z)
        total += z[w] - np.log(np.sum(np.exp(z)))
        if w == EOS:
            break
        prev = w
    return total


def candidates(L):
    """Every distinct output of max_len L: w_1..w_m EOS (m < L) or L symbols without EOS,
    written with EOS repeated after the first."""
    out = set()
    for seq in itertools.product(range(V), repeat=L):
        if EOS in seq:
            k = seq.index(EOS)
            seq = seq[: k + 1] + (EOS,) * (L - k - 1)
        out.add(seq)
    return sorted(out)


@pytest.mark.parametrize("seed", range(3))
def test_beam_search_equals_exhaustive_search(seed):
    step, s0 = toy_step(seed)
    L = 4
    scores = {c: score_np(step, s0, c) for c in candidates(L)}
    best = max(scores, key=scores.get)
    toks, sc = decoding.beam_search(step, s0, bos=BOS, eos=EOS, max_len=L, beam=V ** (L - 1))
    assert tuple(np.asarray(toks[0])) == best
    np.testing.assert_allclose(sc[0], scores[best], rtol=1e-12)
    # every returned hypothesis is scored exactly, best first
    for t, s in zip(np.asarray(toks), np.asarray(sc)):
        if np.isfinite(s):
            np.testing.assert_allclose(s, scores[tuple(t)], rtol=1e-12)
    assert np.all(np.diff(np.asarray(sc)) <= 1e-12)
    lp = decoding.sequence_log_prob(step, s0, toks[0], bos=BOS, eos=EOS)
    np.testing.assert_allclose(lp, scores[best], rtol=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_beam_one_is_greedy(seed):
    step, s0 = toy_step(seed, V=5)
    g = decoding.greedy(step, s0, bos=BOS, eos=EOS, max_len=6)
    b, _ = decoding.beam_search(step, s0, bos=BOS, eos=EOS, max_len=6, beam=1)
    np.testing.assert_array_equal(g, b[0])


def test_sampling_follows_the_softmax():
    step, s0 = toy_step(0, V=4)
    keys = jax.random.split(jax.random.key(0), 4000)
    toks = jax.vmap(lambda k: decoding.sample(step, s0, k, bos=BOS, eos=EOS, max_len=2))(keys)
    p = jax.nn.softmax(step(s0, BOS)[1])
    freq = np.bincount(np.asarray(toks[:, 0]), minlength=4) / 4000
    np.testing.assert_allclose(freq, p, atol=0.03)
    assert np.all(np.asarray(toks[:, 1])[np.asarray(toks[:, 0]) == EOS] == EOS)
    cold = decoding.sample(step, s0, keys[0], bos=BOS, eos=EOS, max_len=5, temperature=1e-4)
    np.testing.assert_array_equal(cold, decoding.greedy(step, s0, bos=BOS, eos=EOS, max_len=5))


def test_decoders_reject_bad_arguments():
    step, s0 = toy_step(0)
    with pytest.raises(ValueError, match="beam"):
        decoding.beam_search(step, s0, bos=BOS, eos=EOS, max_len=3, beam=0)
    with pytest.raises(ValueError, match="max_len"):
        decoding.greedy(step, s0, bos=BOS, eos=EOS, max_len=0)
    with pytest.raises(ValueError, match="temperature"):
        decoding.sample(step, s0, jax.random.key(0), bos=BOS, eos=EOS, max_len=3, temperature=0)
    with pytest.raises(ValueError, match="exactly one"):
        encoder_decoder(5, 4)
    with pytest.raises(ValueError, match="source_length"):
        encoder_decoder(5, 4, source_features=3, encoder="dense")


@pytest.mark.parametrize("attention", [False, True])
def test_teacher_forcing_equals_a_loop_of_the_decoding_step(attention):
    model = encoder_decoder(6, 5, source_vocab=7, embed_size=4, attention=attention, dtype=F64)
    p = model.init(jax.random.key(0))
    src = jnp.array([3, 4, 5, 0, 0])
    tgt = jnp.array([2, 5, 3, 0])
    z = model.logits(p, src, 3, tgt)
    memory, state = model.encode(p, src, 3)
    step = jax.jit(model.step(p, memory))
    prev = model.bos
    for t in range(4):
        state, zt = step(state, prev)
        np.testing.assert_allclose(z[t], zt, rtol=1e-12, atol=1e-12)
        prev = int(tgt[t])
    # the loss is the mean negative log-likelihood of the tokens up to the first eos
    memory, state = model.encode(p, src, 3)
    lp = decoding.sequence_log_prob(step, state, tgt, bos=model.bos, eos=model.eos)
    np.testing.assert_allclose(model.loss(p, src, 3, tgt, 4), -lp / 4, rtol=1e-12)
    # padding beyond the source length is inert
    z2 = model.logits(p, src.at[3:].set(6), 3, tgt)
    np.testing.assert_allclose(z, z2, rtol=1e-12, atol=1e-14)
    b, _ = model.beam_search(p, src, 3, 5, 1)
    np.testing.assert_array_equal(b[0], model.greedy(p, src, 3, 5))


def test_attention_weights_sum_to_one_over_valid_positions():
    model = encoder_decoder(6, 5, source_vocab=7, attention=True, dtype=F64)
    p = model.init(jax.random.key(1))
    memory, state = model.encode(p, jnp.array([3, 4, 5, 6]), 2)
    a = p.attention
    e = jnp.tanh(memory.keys + a.w_a @ state.h + a.b_a) @ a.v
    alpha = np.exp(np.asarray(e[:2]) - np.max(np.asarray(e[:2])))
    alpha /= alpha.sum()
    ctx = alpha @ np.asarray(memory.states[:2])
    _, z = model.step(p, memory)(state, model.bos)
    x = jnp.concatenate([p.tgt_embed[model.bos], jnp.asarray(ctx)])
    from jaxrnn.cells import lstm

    dec = lstm(x.shape[0], 5, dtype=F64)
    _, y = dec.step(p.decoder, state, x)
    np.testing.assert_allclose(
        z, p.out.w @ jnp.concatenate([y, jnp.asarray(ctx)]) + p.out.b, rtol=1e-12
    )


def test_number_words_task():
    from jaxrnn.tasks.number_words import number_to_words, number_words

    assert " ".join(number_to_words(0)) == "zero"
    assert " ".join(number_to_words(4702)) == "four thousand seven hundred two"
    assert " ".join(number_to_words(90015)) == "ninety thousand fifteen"
    assert " ".join(number_to_words(110)) == "one hundred ten"
    d = number_words(max_value=999, num_test=100)
    assert not set(d.train["number"]) & set(d.test["number"])
    assert len(d.train["number"]) + 100 == 1000
    digits = d.meta["target_vocab"]
    for n, y, m in zip(d.test["number"], d.test["y"], d.test["y_length"]):
        assert "".join(digits[t] for t in y[: m - 1]) == str(n) and y[m - 1] == 0


def test_seq2seq_learns_number_words():
    """Held-out numbers below 1000 (chance of an exact 1-4 token match: ~0)."""
    from jaxrnn.applications import run_seq2seq

    r = run_seq2seq(
        hidden=32,
        steps=300,
        lr=1e-2,
        batch_size=32,
        max_value=999,
        num_test=100,
        beam=2,
        eval_every=300,
        progress=False,
    )
    assert r["metrics"]["test_exact_match_greedy"] > 0.6


def test_captioning_learns_digit_names():
    """Real held-out digits, chance 10 %."""
    from jaxrnn.applications import run_captions

    r = run_captions(hidden=32, steps=200, lr=1e-2, batch_size=32, eval_every=200, progress=False)
    assert r["metrics"]["test_word_correct_greedy"] > 0.6
    assert r["metrics"]["test_word_correct_sampled"] > 0.3
