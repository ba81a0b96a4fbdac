"""MNIST-1D (Greydanus & Kobak 2020), generated offline by the ``mnist1d`` package.

``make_dataset(get_dataset_args())`` (never ``get_dataset``, which tries the network):
5000 examples, 4000 train / 1000 test, 40 steps of 1 feature, 10 balanced classes,
standardised. Package and data: Apache-2.0.
"""

from __future__ import annotations

import functools

import numpy as np

from jaxrnn.tasks.base import Dataset

__all__ = ["PAPER_ACCURACY", "mnist1d"]

# Test accuracy (%) in the MNIST-1D README / paper table (Greydanus & Kobak 2020).
PAPER_ACCURACY = {"logistic": 32.0, "MLP": 68.0, "CNN": 94.0, "GRU": 91.0, "human": 96.0}


@functools.cache
def _generate(seed: int, num_samples: int, shuffle_seq: bool):
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("the mnist1d task needs `pip install mnist1d`") from e
    args = get_dataset_args()
    args.seed = seed
    args.num_samples = num_samples
    args.shuffle_seq = shuffle_seq
    state = np.random.get_state()  # noqa: NPY002 - make_dataset reseeds the global generator
    try:
        d = make_dataset(args)
    finally:
        np.random.set_state(state)  # noqa: NPY002
    return d["x"], d["y"], d["x_test"], d["y_test"]


def mnist1d(seed: int = 42, *, num_samples: int = 5000, shuffle_seq: bool = False) -> Dataset:
    """MNIST-1D as ``x (N, 40, 1)`` float32 and ``y (N,)`` int32 (kind ``"classify"``).

    ``seed=42`` is the package's (and the paper's) default data set. ``shuffle_seq``
    gives the paper's shuffled-time variant. Cached in memory per argument set.
    """
    x, y, xt, yt = _generate(int(seed), int(num_samples), bool(shuffle_seq))
    meta = {
        "name": "mnist1d",
        "kind": "classify",
        "input_size": 1,
        "output_size": 10,
        "seq_len": x.shape[1],
        "source": "PyPI mnist1d: make_dataset(get_dataset_args()) (Greydanus & Kobak 2020)",
        "license": "Apache-2.0",
        "published": {"test accuracy %": dict(PAPER_ACCURACY)},
    }
    f = lambda a: a[..., None].astype(np.float32)  # noqa: E731
    return Dataset(
        {"x": f(x), "y": y.astype(np.int32)}, {"x": f(xt), "y": yt.astype(np.int32)}, meta
    )
