r"""The copy (memory) task of Arjovsky, Shah & Bengio 2016 (as in ``lezcano/expRNN``).

Alphabet: 0 blank, 1..8 symbols, 9 delimiter. An input of length ``T + 20`` holds 10
symbols drawn uniformly from 1..8, then ``T - 1`` blanks, the delimiter, and 10 blanks;
the target is ``T + 10`` blanks followed by the 10 symbols. Inputs are one-hot
``(T + 20, 10)``; targets are per-step classes in ``0..8``. The memoryless baseline
(blanks, then uniform over 8 symbols) has cross-entropy
:math:`10 \ln 8 / (T + 20)` (0.1733 at ``T = 100``).
"""

from __future__ import annotations

import math

import numpy as np

from jaxrnn.tasks.base import Dataset

__all__ = ["copy_batch", "copy_task"]

N_SYMBOLS = 8
N_COPY = 10


def copy_batch(rng: np.random.Generator, n: int, T: int) -> tuple[np.ndarray, np.ndarray]:
    """``x (n, T + 20, 10)`` one-hot float32 and ``y (n, T + 20)`` int32."""
    if T < 1:
        raise ValueError(f"T must be positive, got {T}")
    L = T + 2 * N_COPY
    seq = rng.integers(1, N_SYMBOLS + 1, (n, N_COPY))
    inp = np.zeros((n, L), np.int64)
    inp[:, :N_COPY] = seq
    inp[:, N_COPY + T - 1] = N_SYMBOLS + 1
    y = np.zeros((n, L), np.int32)
    y[:, -N_COPY:] = seq
    x = np.eye(N_SYMBOLS + 2, dtype=np.float32)[inp]
    return x, y


def copy_task(
    T: int = 100, *, num_train: int = 10000, num_test: int = 1000, seed: int = 0
) -> Dataset:
    """Fixed train/test sets of the copy task (kind ``"tagging"``)."""
    rng = np.random.default_rng(seed)
    xtr, ytr = copy_batch(rng, num_train, T)
    xte, yte = copy_batch(rng, num_test, T)
    baseline = N_COPY * math.log(N_SYMBOLS) / (T + 2 * N_COPY)
    meta = {
        "name": "copy",
        "kind": "tagging",
        "input_size": N_SYMBOLS + 2,
        "output_size": N_SYMBOLS + 1,
        "seq_len": T + 2 * N_COPY,
        "baseline_ce": baseline,
        "source": "synthetic (Arjovsky, Shah & Bengio 2016; lezcano/expRNN generator)",
        "license": "generated",
        "published": {"baseline CE 10 ln 8 / (T + 20)": baseline},
    }
    return Dataset({"x": xtr, "y": ytr}, {"x": xte, "y": yte}, meta)
