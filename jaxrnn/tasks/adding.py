r"""The adding problem (Hochreiter & Schmidhuber 1997, Exp. 4; Le et al. 2015 form).

Each step carries two features: a value :math:`v_t \sim U(0, 1)` and a marker
:math:`m_t \in \{0, 1\}` that is 1 at exactly two steps, one drawn uniformly from the
first half ``[0, T/2)`` and one from the second half ``[T/2, T)``. The target is the sum
of the two marked values, :math:`y = \sum_t m_t v_t`. Predicting the mean 1 always gives
MSE :math:`\mathrm{Var}(v_a + v_b) = 1/6 \approx 0.1667` (Le et al. report 0.1767 for
their variant). "Solved" (H&S97): absolute error below 0.04.
"""

from __future__ import annotations

import numpy as np

from jaxrnn.tasks.base import Dataset

__all__ = ["adding", "adding_batch"]


def adding_batch(rng: np.random.Generator, n: int, T: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` sequences: ``x (n, T, 2)`` float32 and ``y (n, 1)`` float32."""
    if T < 2:
        raise ValueError(f"T must be at least 2, got {T}")
    v = rng.uniform(0.0, 1.0, (n, T))
    m = np.zeros((n, T))
    half = T // 2
    m[np.arange(n), rng.integers(0, half, n)] = 1.0
    m[np.arange(n), rng.integers(half, T, n)] = 1.0
    x = np.stack([v, m], axis=-1).astype(np.float32)
    y = np.sum(v * m, axis=1, keepdims=True).astype(np.float32)
    return x, y


def adding(T: int = 100, *, num_train: int = 20000, num_test: int = 1000, seed: int = 0) -> Dataset:
    """A fixed train and test set of the adding problem (kind ``"regress"``)."""
    rng = np.random.default_rng(seed)
    xtr, ytr = adding_batch(rng, num_train, T)
    xte, yte = adding_batch(rng, num_test, T)
    meta = {
        "name": "adding",
        "kind": "regress",
        "input_size": 2,
        "output_size": 1,
        "seq_len": T,
        "tolerance": 0.04,
        "baseline_mse": 1.0 / 6.0,
        "source": "synthetic (Hochreiter & Schmidhuber 1997 Exp. 4; Le et al. 2015)",
        "license": "generated",
        "published": {
            "solved": "abs error < 0.04 (H&S97)",
            "baseline MSE (Le et al. 2015)": 0.1767,
        },
    }
    return Dataset({"x": xtr, "y": ytr}, {"x": xte, "y": yte}, meta)
