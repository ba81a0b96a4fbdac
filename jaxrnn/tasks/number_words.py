r"""A translation-like task, generated offline: English number words to digits
(``"four thousand seven hundred two" -> "4702"``).

Source: the words of a number ``0 .. max_value`` (British-free American style, no
"and", no hyphens: ``twenty one``); target: its decimal digits then the end token.
The numbers are split at random into training and held-out sets, so every test pair
is a number the model has never seen; exact match means the whole digit string is
right.
"""

from __future__ import annotations

import numpy as np

from jaxrnn.tasks.base import Dataset

__all__ = ["SOURCE_WORDS", "TARGET_TOKENS", "number_to_words", "number_words"]

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
SOURCE_WORDS = ("<pad>", *_ONES, *_TENS[2:], "hundred", "thousand")
TARGET_TOKENS = ("<eos>", "<bos>", *"0123456789")


def _below_thousand(n: int) -> list[str]:
    out: list[str] = []
    if n >= 100:
        out += [_ONES[n // 100], "hundred"]
        n %= 100
    if n >= 20:
        out.append(_TENS[n // 10])
        n %= 10
        if n:
            out.append(_ONES[n])
    elif n or not out:
        out.append(_ONES[n])
    return out


def number_to_words(n: int) -> list[str]:
    """``0 <= n < 10**6`` in words, e.g. ``4702 -> [four, thousand, seven, hundred, two]``."""
    if not 0 <= n < 10**6:
        raise ValueError(f"n must be in [0, 10**6), got {n}")
    if n < 1000:
        return _below_thousand(n)
    words = [*_below_thousand(n // 1000), "thousand"]
    return words + (_below_thousand(n % 1000) if n % 1000 else [])


def _encode(numbers: np.ndarray, S: int, T: int):
    n = len(numbers)
    x = np.zeros((n, S), np.int32)
    y = np.zeros((n, T), np.int32)  # 0 = <eos>, also the padding
    length = np.zeros(n, np.int32)
    y_length = np.zeros(n, np.int32)
    for i, v in enumerate(numbers):
        w = [SOURCE_WORDS.index(s) for s in number_to_words(int(v))]
        d = [TARGET_TOKENS.index(c) for c in str(int(v))]
        x[i, : len(w)] = w
        y[i, : len(d)] = d
        length[i], y_length[i] = len(w), len(d) + 1
    return {"x": x, "y": y, "length": length, "y_length": y_length, "number": numbers}


def number_words(
    *, max_value: int = 99_999, num_test: int = 2000, num_train: int | None = None, seed: int = 0
) -> Dataset:
    """Number words to digits, numbers ``0..max_value`` split at random (kind ``"seq2seq"``).

    ``x (N, S)`` source word ids (``SOURCE_WORDS``, right-padded with 0), ``length
    (N,)``; ``y (N, T)`` target ids (``TARGET_TOKENS``: digits then ``<eos>`` = 0,
    padded with 0), ``y_length (N,)`` counting the ``<eos>``; ``number (N,)``. The test
    set is ``num_test`` numbers; the training set (``num_train``, default all the
    others) never contains them.
    """
    if not 10 <= max_value < 10**6:
        raise ValueError(f"max_value must be in [10, 10**6), got {max_value}")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(max_value + 1)
    if not 0 < num_test < len(perm):
        raise ValueError(f"num_test must be in [1, {len(perm) - 1}], got {num_test}")
    test, train = perm[:num_test], perm[num_test:]
    if num_train is not None:
        train = train[:num_train]
    S = max(len(number_to_words(v)) for v in range(max_value + 1))
    T = len(str(max_value)) + 1
    meta = {
        "name": "number_words",
        "kind": "seq2seq",
        "source_vocab": list(SOURCE_WORDS),
        "target_vocab": list(TARGET_TOKENS),
        "bos": 1,
        "eos": 0,
        "seq_len": S,
        "target_len": T,
        "source": "generated: English number words -> digits",
        "license": "generated",
        "published": {},
    }
    return Dataset(_encode(train, S, T), _encode(test, S, T), meta)
