"""Offline tasks: shapes, determinism by seed, and each generator checked against an
independent statement of its definition (Python loops, a regular expression for the
Reber grammar, exact entropies for the add-task floors, idx files written here)."""

from __future__ import annotations

import gzip
import math
import re

import numpy as np
import pytest

from jaxrnn import tasks
from jaxrnn.tasks import reber
from jaxrnn.tasks.next_letter import decode, encode


def _same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_next_letter_is_the_seed_data():
    d = tasks.next_letter()
    xs = ["abc", "bcd", "cdef", "fgh", "a", "bc", "abcdef"]
    ys = ["bcd", "cde", "defg", "ghi", "b", "cd", "bcdefg"]
    for i, (a, b) in enumerate(zip(xs, ys)):
        L = d.train["length"][i]
        assert decode(d.train["x"][i, :L].argmax(-1)) == a
        assert decode(d.train["y"][i, :L]) == b
        assert not d.train["x"][i, L:].any()
    with pytest.raises(ValueError, match="letters"):
        encode("xyz")


def test_mnist1d_offline_shapes_balance_and_determinism():
    d = tasks.mnist1d()
    assert d.train["x"].shape == (4000, 40, 1) and d.test["x"].shape == (1000, 40, 1)
    assert d.train["x"].dtype == np.float32 and d.train["y"].dtype == np.int32
    counts = np.bincount(d.train["y"], minlength=10)
    assert counts.min() > 300 and counts.sum() == 4000
    # Standardised over the whole set by mnist1d itself.
    allx = np.concatenate([d.train["x"], d.test["x"]]).astype(np.float64)
    np.testing.assert_allclose([allx.mean(), allx.std()], [0.0, 1.0], atol=1e-5)
    state = np.random.get_state()  # noqa: NPY002 - mnist1d must not leak its reseeding
    tasks.mnist1d(seed=3, num_samples=200)
    assert np.array_equal(np.random.get_state()[1], state[1])  # noqa: NPY002
    assert d.meta["published"]["test accuracy %"]["GRU"] == 91.0


def test_digits_rows_and_stratified_split():
    d = tasks.digits(0)
    from sklearn.datasets import load_digits

    images = load_digits().images / 16.0
    assert d.train["x"].shape[1:] == (8, 8)
    assert len(d.train["y"]) + len(d.test["y"]) == len(images)
    # every test image is one of the original images, rows kept in order
    flat = {img.astype(np.float32).tobytes() for img in images}
    assert all(x.tobytes() in flat for x in d.test["x"])
    frac = np.bincount(d.test["y"], minlength=10) / np.bincount(d.train["y"], minlength=10)
    np.testing.assert_allclose(frac, 0.25, atol=0.02)
    _same(d.test, tasks.digits(0).test)
    assert not np.array_equal(d.test["y"], tasks.digits(1).test["y"])


def _write_idx(path, array, gz):
    codes = {np.uint8: 0x08, np.int32: 0x0C}
    header = bytes([0, 0, codes[array.dtype.type], array.ndim])
    header += np.asarray(array.shape, ">u4").tobytes()
    data = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


@pytest.mark.parametrize("gz", [True, False])
def test_idx_loader_reads_files_written_here(tmp_path, gz):
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, 6).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (4, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, 4).astype(np.uint8),
    }
    for name, a in arrays.items():
        _write_idx(tmp_path / (name + (".gz" if gz else "")), a, gz)
    d = tasks.idx_images(tmp_path)
    want = arrays["train-images-idx3-ubyte"].astype(np.float32) / np.float32(255)
    np.testing.assert_array_equal(d.train["x"], want)
    np.testing.assert_array_equal(d.test["y"], arrays["t10k-labels-idx1-ubyte"])
    assert d.meta["seq_len"] == 28 and d.meta["input_size"] == 28
    big = np.arange(12, dtype=np.int32).reshape(3, 4) - 5
    _write_idx(tmp_path / "big", big, False)
    np.testing.assert_array_equal(tasks.read_idx(tmp_path / "big"), big)


def test_idx_loader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        tasks.idx_images(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        tasks.idx_images(tmp_path)
    _write_idx(tmp_path / "x", np.zeros((2, 3, 3), np.uint8), False)
    (tmp_path / "x").write_bytes((tmp_path / "x").read_bytes()[:-2])
    with pytest.raises(ValueError, match="truncated"):
        tasks.read_idx(tmp_path / "x")
    (tmp_path / "y").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="not an idx file"):
        tasks.read_idx(tmp_path / "y")


def test_mnist5k_is_real_mnist_balanced():
    d = tasks.mnist5k(0)
    assert d.train["x"].shape == (4000, 28, 28) and d.test["x"].shape == (1000, 28, 28)
    np.testing.assert_array_equal(np.bincount(d.test["y"]), np.full(10, 100))
    assert 0.0 <= d.train["x"].min() and d.train["x"].max() <= 1.0


def test_adding_targets_are_the_sum_of_the_marked_values():
    d = tasks.adding(20, num_train=50, num_test=10, seed=1)
    x, y = d.train["x"], d.train["y"]
    for i in range(len(x)):
        marks = [t for t in range(20) if x[i, t, 1] == 1.0]
        assert len(marks) == 2 and marks[0] < 10 <= marks[1]
        assert abs(y[i, 0] - (x[i, marks[0], 0] + x[i, marks[1], 0])) < 1e-6
    _same(d.train, tasks.adding(20, num_train=50, num_test=10, seed=1).train)
    # The constant predictor's MSE is Var(U + U) = 1/6.
    big = tasks.adding(10, num_train=40000, num_test=1, seed=0).train["y"]
    assert abs(np.mean((big - 1.0) ** 2) - 1 / 6) < 0.005


def test_copy_task_layout_and_baseline():
    T = 15
    d = tasks.copy_task(T, num_train=20, num_test=2, seed=0)
    x, y = d.train["x"].argmax(-1), d.train["y"]
    assert x.shape == (20, T + 20)
    for i in range(20):
        seq = x[i, :10]
        assert set(seq.tolist()) <= set(range(1, 9))
        assert (x[i, 10 : 10 + T - 1] == 0).all() and x[i, 10 + T - 1] == 9
        assert (x[i, 10 + T :] == 0).all()
        assert (y[i, : T + 10] == 0).all() and (y[i, T + 10 :] == seq).all()
    np.testing.assert_allclose(
        tasks.copy_task(100, num_train=1, num_test=1).meta["baseline_ce"], 0.1733, atol=1e-4
    )
    assert math.isclose(d.meta["baseline_ce"], 10 * math.log(8) / (T + 20))


# The Reber language as a regular expression, derived by hand from the automaton in
# Cleeremans et al. (1989) independently of the table in jaxrnn.tasks.reber.
_R2 = r"(?:XT*VP)*(?:S|XT*VV)"
_REBER = re.compile(rf"B(?:TS*X{_R2}|PT*V(?:V|P{_R2}))E")


def test_embedded_reber_strings_are_in_the_grammar_and_legal_sets_are_right():
    rng = np.random.default_rng(0)
    seen: dict[str, set[str]] = {}
    count: dict[str, int] = {}
    legal_of: dict[str, str] = {}
    for _ in range(3000):
        s = reber.embedded_reber_string(rng)
        assert s[0] == "B" and s[-1] == "E" and s[1] == s[-2] and s[1] in "TP"
        assert _REBER.fullmatch(s[2:-2]), s
        legal = reber.legal_successors(s)
        assert len(legal) == len(s) - 1
        for t in range(len(s) - 1):
            prefix = s[: t + 1]
            assert s[t + 1] in legal[t]
            assert legal_of.setdefault(prefix, legal[t]) == legal[t]  # depends on the prefix only
            seen.setdefault(prefix, set()).add(s[t + 1])
            count[prefix] = count.get(prefix, 0) + 1
    # Completeness: every legal symbol shows up after prefixes that occur often.
    frequent = [p for p, n in count.items() if n >= 40]
    assert len(frequent) > 20
    for p in frequent:
        assert seen[p] == set(legal_of[p]), p


def test_embedded_reber_dataset_padding_and_legal_arrays():
    d = tasks.embedded_reber(num_train=30, num_test=5, max_len=20, seed=1)
    assert d.train["x"].shape == (30, 19, 7)
    for i in range(30):
        L = d.train["length"][i]
        assert L + 1 <= 20
        assert not d.train["x"][i, L:].any() and not d.train["legal"][i, L:].any()
        assert d.train["legal"][i, np.arange(L), d.train["y"][i, :L]].all()
    _same(d.test, tasks.embedded_reber(num_train=30, num_test=5, max_len=20, seed=1).test)


def test_add_task_stream_probabilities_and_floors():
    x, y = tasks.add_task_stream(5000, seed=0)
    xs = x[:, 0]
    for t in range(8, 200):
        want = 0.5 + 0.5 * xs[t - 3] - 0.25 * xs[t - 8]
        assert y[t, 1] == pytest.approx(want) and y[t, 0] == pytest.approx(1 - want)
    assert y[0, 1] == 0.5  # x before the stream counts as 0
    floors = tasks.add_task_floors()
    for k, v in tasks.ADD_TASK_FLOORS.items():
        assert abs(floors[k] - v) < 1.5e-3, (k, floors[k], v)
    # Monte-Carlo: the exact predictor's mean cross-entropy approaches the "both" floor.
    p = y[8:, 1]
    h = -(p * np.log(np.clip(p, 1e-12, 1)) + (1 - p) * np.log(np.clip(1 - p, 1e-12, 1)))
    assert abs(h.mean() - floors["both"]) < 0.02
    _same({"x": x}, {"x": tasks.add_task_stream(5000, seed=0)[0]})


def test_char_lm_windows_reassemble_the_text(tmp_path):
    text = "hello world, this is a small text for a test. " * 20
    f = tmp_path / "t.txt"
    f.write_text(text)
    d = tasks.char_lm(f, seq_len=16)
    vocab = d.meta["vocab"]
    from jaxrnn.tasks.char_lm import decode as dec

    assert dec(d.train["x"].reshape(-1), vocab) == text[: d.train["x"].size]
    np.testing.assert_array_equal(d.train["y"][:, :-1], d.train["x"][:, 1:])
    assert d.meta["uniform_bpc"] == pytest.approx(math.log2(len(set(text))))
    assert d.meta["unigram_bpc"] < d.meta["uniform_bpc"]
    with pytest.raises(FileNotFoundError):
        tasks.char_lm(tmp_path / "missing.txt")
    default = tasks.char_lm(max_chars=5000, seq_len=50)
    assert default.meta["source"].startswith("CPython pydoc_data")
