"""The :class:`Dataset` every task returns: train/test arrays plus metadata."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

__all__ = ["Dataset", "stratified_split"]


class Dataset(NamedTuple):
    """Arrays plus metadata, all numpy, deterministic by seed.

    Attributes:
      train, test: dicts of arrays with a common first (example) axis. Always ``"x"``
        (inputs ``(N, T, I)``, float32) and ``"y"`` (targets); optional ``"length"``
        ``(N,)`` (valid prefix of padded sequences) and task-specific extras.
      meta: ``name``, ``kind`` (``"classify"``: many-to-one classes;
        ``"tagging"``: per-step classes; ``"regress"``: many-to-one regression),
        ``input_size``, ``output_size``, ``seq_len``, ``source``, ``license``,
        ``published`` (paper numbers) and task-specific entries.
    """

    train: dict[str, np.ndarray]
    test: dict[str, np.ndarray]
    meta: dict[str, Any]


def stratified_split(
    y: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, test)`` of a stratified split (scikit-learn ``train_test_split``)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    tr, te = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=y)
    return np.sort(tr), np.sort(te)
