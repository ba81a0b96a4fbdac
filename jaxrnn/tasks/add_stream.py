r"""The "add task" stream used for RTRL comparisons (Pitis 2016; Marschall et al. 2020).

One unbroken stream: :math:`x_t \sim \mathrm{Bernoulli}(0.5)` and a soft binary target

.. math::

    P(y_t = 1) = 0.5 + 0.5\, x_{t - t_1} - 0.25\, x_{t - t_2}, \qquad (t_1, t_2) = (3, 8),

with :math:`x_s = 0` for :math:`s < 0`. The cross-entropy floors are the mean binary
entropies a predictor reaches knowing nothing (0.661), only :math:`x_{t-t_1}` (0.520),
or both (0.454): :func:`add_task_floors` computes them exactly.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

__all__ = ["ADD_TASK_FLOORS", "add_task_floors", "add_task_stream"]

# The published (rounded) floors for lags (3, 8): r2rt table, Marschall et al.
ADD_TASK_FLOORS = {"no_memory": 0.661, "lag1_only": 0.520, "both": 0.454}


def _h(p: float) -> float:
    return -sum(q * math.log(q) for q in (p, 1.0 - p) if q > 0)


def _p(x1: float, x2: float) -> float:
    return 0.5 + 0.5 * x1 - 0.25 * x2


def add_task_floors() -> dict[str, float]:
    """Exact cross-entropy floors (nats): no memory, only the first lag, both lags."""
    none = _h(sum(_p(a, b) for a, b in itertools.product((0, 1), repeat=2)) / 4)
    lag1 = sum(_h((_p(a, 0) + _p(a, 1)) / 2) for a in (0, 1)) / 2
    both = sum(_h(_p(a, b)) for a, b in itertools.product((0, 1), repeat=2)) / 4
    return {"no_memory": none, "lag1_only": lag1, "both": both}


def add_task_stream(
    num_steps: int, seed: int = 0, lags: tuple[int, int] = (3, 8)
) -> tuple[np.ndarray, np.ndarray]:
    """``x (num_steps, 1)`` in {0, 1} and soft targets ``y (num_steps, 2)`` = ``(1 - p, p)``."""
    if num_steps < 1:
        raise ValueError(f"num_steps must be positive, got {num_steps}")
    t1, t2 = lags
    if not (0 < t1 and 0 < t2):
        raise ValueError(f"lags must be positive, got {lags}")
    x = np.random.default_rng(seed).integers(0, 2, num_steps).astype(np.float32)
    pad = np.concatenate([np.zeros(max(t1, t2), np.float32), x])
    off = max(t1, t2)
    x1 = pad[off - t1 : off - t1 + num_steps]
    x2 = pad[off - t2 : off - t2 + num_steps]
    p = 0.5 + 0.5 * x1 - 0.25 * x2
    return x[:, None], np.stack([1.0 - p, p], axis=-1).astype(np.float32)
