"""Seed 002's next-letter toy: an SRN learns that the letter after ``c`` is ``d``.

Training pairs (the seed's ``x_data``/``y_data``): ``abc -> bcd``, ``bcd -> cde``,
``cdef -> defg``, ``fgh -> ghi``, ``a -> b``, ``bc -> cd``, ``abcdef -> bcdefg`` over the
alphabet ``abcdefghi``: at every step the target is the next letter. The seed's test is
``c.next=`` (expects ``d``) and ``fg.next=`` (expects ``h``).
"""

from __future__ import annotations

import numpy as np

from jaxrnn.tasks.base import Dataset

__all__ = ["ALPHABET", "PAIRS", "decode", "encode", "next_letter"]

ALPHABET = "abcdefghi"
PAIRS = (
    ("abc", "bcd"),
    ("bcd", "cde"),
    ("cdef", "defg"),
    ("fgh", "ghi"),
    ("a", "b"),
    ("bc", "cd"),
    ("abcdef", "bcdefg"),
)


def encode(text: str, alphabet: str = ALPHABET) -> np.ndarray:
    """One-hot ``(len(text), len(alphabet))`` float32 encoding."""
    bad = sorted(set(text) - set(alphabet))
    if bad:
        raise ValueError(f"text must use only the letters {alphabet!r}, got {bad}")
    return np.eye(len(alphabet), dtype=np.float32)[[alphabet.index(c) for c in text]]


def decode(indices, alphabet: str = ALPHABET) -> str:
    """Letters of integer indices."""
    return "".join(alphabet[int(i)] for i in np.ravel(indices))


def next_letter() -> Dataset:
    """The seed's seven training strings, padded to length 6 (``"length"`` marks them).

    ``train == test`` (it is a toy); ``y (7, 6)`` holds next-letter indices (0 in the
    padding). Kind ``"tagging"``.
    """
    T = max(len(a) for a, _ in PAIRS)
    V = len(ALPHABET)
    x = np.zeros((len(PAIRS), T, V), np.float32)
    y = np.zeros((len(PAIRS), T), np.int32)
    length = np.zeros(len(PAIRS), np.int32)
    for i, (a, b) in enumerate(PAIRS):
        x[i, : len(a)] = encode(a)
        y[i, : len(b)] = [ALPHABET.index(c) for c in b]
        length[i] = len(a)
    data = {"x": x, "y": y, "length": length}
    meta = {
        "name": "next_letter",
        "kind": "tagging",
        "input_size": V,
        "output_size": V,
        "seq_len": T,
        "alphabet": ALPHABET,
        "source": "seed 002 (SRN example: x_data/y_data, c.next= and fg.next=)",
        "license": "toy data",
        "published": {"c.next": "d", "fg.next": "h"},
    }
    return Dataset(data, {k: v.copy() for k, v in data.items()}, meta)
