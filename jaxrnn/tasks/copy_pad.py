r"""The copy task of Zucchet et al. 2023 ("Online learning of long-range dependencies",
NeurIPS; their ``copy`` data loader).

An input of length ``T = 2P + pad + 1`` and width ``bits + 1``: the first ``P`` steps
hold a pattern of ``bits`` random bits (Bernoulli(1/2)) each, then ``pad`` blank steps,
then a stop token (the last input channel) at step ``P + pad``, then ``P`` blank steps
during which the network must output the pattern, bit by bit (one binary target per
bit; the loss counts only these last ``P`` steps). With the defaults (``P = 10``,
``pad = 7``, ``bits = 7``) ``T = 28``. A memoryless predictor has per-bit cross-entropy
``ln 2`` and bit accuracy 1/2.
"""

from __future__ import annotations

import numpy as np

__all__ = ["copy_pad_batch"]


def copy_pad_batch(
    rng: np.random.Generator, n: int, *, pattern: int = 10, pad: int = 7, bits: int = 7
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``x (n, T, bits + 1)``, bit targets ``y (n, T, bits)`` and the loss weights
    ``w (n, T)`` (1 on the last ``pattern`` steps), float32, ``T = 2 pattern + pad + 1``."""
    for name, v in (("n", n), ("pattern", pattern), ("bits", bits)):
        if v < 1:
            raise ValueError(f"{name} must be positive, got {v}")
    if pad < 0:
        raise ValueError(f"pad must be non-negative, got {pad}")
    T = 2 * pattern + pad + 1
    seq = rng.integers(0, 2, (n, pattern, bits)).astype(np.float32)
    x = np.zeros((n, T, bits + 1), np.float32)
    x[:, :pattern, :bits] = seq
    x[:, pattern + pad, bits] = 1.0
    y = np.zeros((n, T, bits), np.float32)
    y[:, T - pattern :] = seq
    w = np.zeros((n, T), np.float32)
    w[:, T - pattern :] = 1.0
    return x, y, w
