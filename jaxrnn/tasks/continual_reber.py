r"""The continual embedded Reber stream (Gers, Schmidhuber & Cummins 2000, "Learning to
forget: continual prediction with LSTM", Neural Computation 12(10)).

Embedded Reber strings (:mod:`jaxrnn.tasks.reber`) are concatenated into one stream
with no marker a network could be reset on: ``... B T <Reber> T E B P <Reber> P E B
...``. At step ``t`` the input is the symbol ``s_t`` and the target ``s_{t+1}``; the
legal successors are those of the embedded grammar inside a string and ``{B}`` after
a string's final ``E``. A prediction is correct when the ``k`` most probable symbols
are exactly the ``k`` legal successors (Hochreiter & Schmidhuber 1997's criterion,
also :func:`jaxrnn.tasks.reber.legal_successors`). The second symbol after each
string's start must be remembered across the inner string and then forgotten: an
LSTM without a forget gate has no way to release it.
"""

from __future__ import annotations

import numpy as np

from jaxrnn.tasks.base import Dataset
from jaxrnn.tasks.reber import SYMBOLS, embedded_reber_string, legal_successors

__all__ = ["continual_reber", "continual_reber_stream"]

_B = SYMBOLS.index("B")


def continual_reber_stream(
    num_symbols: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One continual stream: ``(x (N,), y (N,), legal (N, 7), start (N,))``, ``N =
    num_symbols``.

    ``x`` and ``y = x`` shifted by one are symbol indices into ``SYMBOLS`` (int8);
    ``legal[t]`` marks the legal successors of ``x[:t+1]`` (``y[t]`` is always one);
    ``start[t]`` is true where ``x[t]`` begins a string: the network is never told
    (only the "external reset" baseline of Gers et al. uses it).
    """
    if isinstance(num_symbols, bool) or not isinstance(num_symbols, int) or num_symbols < 1:
        raise ValueError(f"num_symbols must be a positive integer, got {num_symbols!r}")
    parts: list[str] = []
    n = 0
    while n <= num_symbols:
        parts.append(embedded_reber_string(rng))
        n += len(parts[-1])
    codes: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # string -> (symbols, legal rows)
    starts = np.concatenate([[0], np.cumsum([len(s) for s in parts])[:-1]])
    for s in set(parts):
        rows = np.zeros((len(s), len(SYMBOLS)), bool)
        for t, ok in enumerate([*legal_successors(s), "B"]):  # after the final E: a new B
            rows[t, [SYMBOLS.index(c) for c in ok]] = True
        codes[s] = (np.asarray([SYMBOLS.index(c) for c in s], np.int8), rows)
    stream = np.concatenate([codes[s][0] for s in parts])[: num_symbols + 1]
    mask = np.concatenate([codes[s][1] for s in parts])[:num_symbols]
    start = np.zeros(num_symbols, bool)
    start[starts[starts < num_symbols]] = True
    return stream[:-1], stream[1:], mask, start


def continual_reber(
    *,
    num_streams: int = 512,
    stream_symbols: int = 1000,
    test_symbols: int = 1_000_000,
    seed: int = 0,
) -> Dataset:
    """Training streams and one long test stream (kind ``"continual"``).

    ``train``: ``x, y (num_streams, stream_symbols)`` int8, ``legal (num_streams,
    stream_symbols, 7)`` and ``start`` (string starts, bool): independent streams,
    each starting at a string start (about 12 symbols per string) and read by the
    network from its initial state, as the paper's training streams. ``test``: the
    same for a single stream of ``test_symbols`` (leading axis 1), read from the
    initial state with no reset.
    Symbols are indices; one-hot them with ``meta["one_hot"]``.
    """
    rng = np.random.default_rng(seed)
    train = [continual_reber_stream(stream_symbols, rng) for _ in range(num_streams)]
    test = continual_reber_stream(test_symbols, np.random.default_rng([seed, 1]))
    stack = lambda parts: {  # noqa: E731
        k: np.stack([p[i] for p in parts]) for i, k in enumerate(("x", "y", "legal", "start"))
    }
    meta = {
        "name": "continual_reber",
        "kind": "continual",
        "input_size": len(SYMBOLS),
        "output_size": len(SYMBOLS),
        "one_hot": len(SYMBOLS),
        "seq_len": None,
        "symbols": SYMBOLS,
        "source": "synthetic (continual embedded Reber grammar; Gers et al. 2000)",
        "license": "generated",
        "published": {
            "Gers et al. 2000 (CERG)": "LSTM without forget gate: 0 % of runs solve the "
            "continual stream; LSTM with forget gates solves it",
        },
    }
    return Dataset(stack(train), stack([test]), meta)
