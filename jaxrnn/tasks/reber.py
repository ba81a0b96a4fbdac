r"""The embedded Reber grammar (Cleeremans et al. 1989; Hochreiter & Schmidhuber 1997 Exp. 1).

Symbols ``B T P S X V E``. The Reber grammar (finite automaton, ``E`` ends)::

    start -B-> 0;  0 -T-> 1, 0 -P-> 5;  1 -S-> 1, 1 -X-> 2;  2 -S-> 3, 2 -X-> 5;
    5 -T-> 5, 5 -V-> 4;  4 -V-> 3, 4 -P-> 2;  3 -E-> end

An embedded string is ``B a <Reber string> a E`` with ``a`` in {T, P} chosen at random:
predicting the second-to-last symbol needs the second one, across the whole inner
string. The task is next-symbol prediction: input the one-hot symbol ``s_t``, target
``s_{t+1}``. Following H&S97, a string is *correct* when at every step the network's
``k`` most probable symbols are exactly the ``k`` legal successors. The grammar's
entropy makes about 0.443 nats/step the loss floor (REFERENCES, measured).
"""

from __future__ import annotations

import numpy as np

from jaxrnn.tasks.base import Dataset

__all__ = ["SYMBOLS", "embedded_reber", "embedded_reber_string", "legal_successors"]

SYMBOLS = "BTPSXVE"
# state -> [(symbol, next_state)]; state 3 only emits E.
_REBER = {
    0: [("T", 1), ("P", 5)],
    1: [("S", 1), ("X", 2)],
    2: [("S", 3), ("X", 5)],
    5: [("T", 5), ("V", 4)],
    4: [("V", 3), ("P", 2)],
}


def _reber_inner(rng: np.random.Generator) -> str:
    """A Reber string without the leading B and trailing E."""
    state, out = 0, []
    while state != 3:
        sym, state = _REBER[state][rng.integers(2)]
        out.append(sym)
    return "".join(out)


def embedded_reber_string(rng: np.random.Generator) -> str:
    """One embedded Reber string ``B a B <inner> E a E``."""
    a = "TP"[rng.integers(2)]
    return f"B{a}B{_reber_inner(rng)}E{a}E"


def legal_successors(s: str) -> list[str]:
    """For each prefix ``s[:t+1]`` (``t < len(s) - 1``) the set of legal next symbols."""
    out = []
    a = s[1]
    for t in range(len(s) - 1):
        if t == 0:
            legal = "TP"
        elif t == 1:
            legal = "B"
        elif t == len(s) - 3:  # just read the inner E: the embedded symbol comes next
            legal = a
        elif t == len(s) - 2:
            legal = "E"
        else:  # inside the inner Reber string: replay the automaton on s[3 : t + 1]
            state = 0
            for c in s[3 : t + 1]:
                state = dict(_REBER[state])[c]
            legal = "E" if state == 3 else "".join(c for c, _ in _REBER[state])
        out.append(legal)
    return out


def _encode(strings: list[str], T: int):
    n, V = len(strings), len(SYMBOLS)
    x = np.zeros((n, T, V), np.float32)
    y = np.zeros((n, T), np.int32)
    legal = np.zeros((n, T, V), bool)
    length = np.zeros(n, np.int32)
    for i, s in enumerate(strings):
        idx = [SYMBOLS.index(c) for c in s]
        L = len(s) - 1
        x[i, np.arange(L), idx[:-1]] = 1.0
        y[i, :L] = idx[1:]
        for t, ok in enumerate(legal_successors(s)):
            legal[i, t, [SYMBOLS.index(c) for c in ok]] = True
        length[i] = L
    return {"x": x, "y": y, "length": length, "legal": legal}


def embedded_reber(
    *, num_train: int = 8000, num_test: int = 500, max_len: int = 30, seed: int = 0
) -> Dataset:
    """Embedded Reber strings, padded to ``max_len - 1`` steps (kind ``"tagging"``).

    Strings longer than ``max_len`` symbols are redrawn (the loops make the length
    unbounded; the REFERENCES measurement used strings of 9 to 30 symbols). Arrays:
    ``x (N, T, 7)``, ``y (N, T)``, ``length (N,)`` and ``legal (N, T, 7)``, the legal
    successor sets for the H&S97 criterion.
    """
    rng = np.random.default_rng(seed)

    def draw(n):
        out = []
        while len(out) < n:
            s = embedded_reber_string(rng)
            if len(s) <= max_len:
                out.append(s)
        return out

    T = max_len - 1
    meta = {
        "name": "reber",
        "kind": "tagging",
        "input_size": len(SYMBOLS),
        "output_size": len(SYMBOLS),
        "seq_len": T,
        "symbols": SYMBOLS,
        "entropy_floor_nats": 0.443,
        "source": "synthetic (embedded Reber grammar; Hochreiter & Schmidhuber 1997 Exp. 1)",
        "license": "generated",
        "published": {
            "H&S97 LSTM": "solved 148/150 trials (4 blocks x 1 cell), mean 8,440 strings",
        },
    }
    return Dataset(_encode(draw(num_train), T), _encode(draw(num_test), T), meta)
