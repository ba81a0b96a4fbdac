"""Character-level language modelling on an offline text.

The default text is CPython's own ``pydoc_data.topics.topics`` (a dict of help texts,
about 465k characters, PSF licence; always installed), joined in key order; any local
text file can be used instead. The text is split 90/10 into train and test streams,
each cut into non-overlapping windows of ``seq_len + 1`` characters: ``x`` holds the
token ids of the first ``seq_len`` characters (one-hot them for the model) and ``y``
the next characters. Metric: bits per character (cross-entropy / ln 2).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from jaxrnn.tasks.base import Dataset

__all__ = ["char_lm", "decode", "encode", "pydoc_text"]


def pydoc_text() -> str:
    """CPython's ``pydoc_data.topics.topics`` help texts, joined in sorted key order."""
    from pydoc_data.topics import topics

    return "\n".join(topics[k] for k in sorted(topics))


def encode(text: str, vocab: str) -> np.ndarray:
    """Token ids (int32) of ``text`` in ``vocab``."""
    table = {c: i for i, c in enumerate(vocab)}
    bad = sorted(set(text) - set(table))
    if bad:
        raise ValueError(f"text has characters outside the vocabulary: {bad[:10]}")
    return np.fromiter((table[c] for c in text), np.int32, len(text))


def decode(ids, vocab: str) -> str:
    """Text of token ids."""
    return "".join(vocab[int(i)] for i in np.ravel(ids))


def char_lm(
    path: str | os.PathLike | None = None,
    *,
    seq_len: int = 100,
    max_chars: int | None = None,
    test_fraction: float = 0.1,
) -> Dataset:
    """Windows of a text for next-character prediction (kind ``"tagging"``).

    Args:
      path: a UTF-8 text file; ``None`` uses :func:`pydoc_text`.
      seq_len: characters per window.
      max_chars: keep only the first ``max_chars`` characters (small tests).
      test_fraction: the last part of the text held out.

    ``meta`` has ``vocab`` (the sorted characters), ``one_hot`` (vocabulary size:
    inputs are token ids to be one-hot encoded) and the uniform and unigram entropies
    in bits per character of the training text.
    """
    if path is None:
        text, source = pydoc_text(), "CPython pydoc_data.topics.topics"
        license = "PSF-2.0"
    else:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"text file {str(p)!r} does not exist")
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(
                f"text file {str(p)!r} is not UTF-8 text (byte {e.start}: {e.reason})"
            ) from None
        source, license = f"text file {str(p)!r}", "as the file"
    if max_chars is not None:
        text = text[:max_chars]
    vocab = "".join(sorted(set(text)))
    ids = encode(text, vocab)
    split = int(len(ids) * (1.0 - test_fraction))
    if split < seq_len + 1 or len(ids) - split < seq_len + 1:
        raise ValueError(f"text of {len(ids)} characters is too short for seq_len={seq_len}")

    def windows(a):
        n = (len(a) - 1) // seq_len
        x = a[: n * seq_len].reshape(n, seq_len)
        y = a[1 : n * seq_len + 1].reshape(n, seq_len)
        return {"x": x, "y": y}

    counts = np.bincount(ids[:split], minlength=len(vocab)).astype(np.float64)
    q = counts[counts > 0] / counts.sum()
    meta = {
        "name": "char_lm",
        "kind": "tagging",
        "input_size": len(vocab),
        "output_size": len(vocab),
        "seq_len": seq_len,
        "vocab": vocab,
        "one_hot": len(vocab),
        "uniform_bpc": math.log2(len(vocab)),
        "unigram_bpc": float(-(q * np.log2(q)).sum()),
        "source": source,
        "license": license,
        "published": {},
    }
    return Dataset(windows(ids[:split]), windows(ids[split:]), meta)
