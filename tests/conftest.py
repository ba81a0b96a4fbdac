"""Test configuration: float64 and strict dtype promotion, and the registry of cells.

Every cell the library ships enters ``CELL_CASES``; the generic battery
(``tests/test_cells.py``), the sequence tests and the gradient tests (RTRL == BPTT)
run over all of them. A new cell adds one line here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

# The suite's cost is mostly XLA compiling many small programs (the CPU backend's
# compile is ~80 % of tests/test_cells.py's time). LLVM optimisation level 0 (XLA's
# default is 3) about halves that compile time; the few long training checks run slower,
# the suite as a whole is far cheaper. No level changes what a program computes beyond
# rounding (no fast math). Set before JAX starts its backend; subprocesses (README, CLI,
# multi-device) inherit it. A level given in XLA_FLAGS by the caller wins.
XLA_OPT_FLAG = "--xla_backend_optimization_level=0"
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {XLA_OPT_FLAG}".strip()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")

import references as R  # noqa: E402

import jaxrnn  # noqa: E402

# CI runs property tests with a fixed seed sequence, so a green run is reproducible;
# locally hypothesis explores new examples every run.
settings.register_profile("ci", derandomize=True, deadline=None)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

INPUT_SIZE = 3
HIDDEN_SIZE = 5
I, H = INPUT_SIZE, HIDDEN_SIZE


@dataclass(frozen=True)
class Case:
    """One registered cell configuration and what the battery can check on it.

    - ``make(dtype) -> Cell`` (calling the case calls ``make``).
    - ``n_params``: the parameter count from the factory's docstring formula.
    - ``numpy``: ``ref(params, carry0, xs) -> ys``, an independent transcription of the
      paper's equations (``tests/references.py``), or ``None``.
    - ``torch``: PyTorch has the cell (``references.torch_cell`` is the reference).
    - ``diagonal``: element-wise (or ``k`` state variables per unit: ``2`` for the LRU):
      ``check_diagonal`` passes and RTRL's O(P) path runs.
    - ``elman``: Elman-type (a parameter reaches one carry entry per step, output in the
      carry): ``rflo`` accepts it and RFLO(alpha=1) == TBPTT(1). Otherwise ``rflo`` must
      refuse it.
    - ``full``: also runs the costly items, namely the semantics (reverse, resets, masks
      under hypothesis, forward mode) and the approximate gradient methods
      (tests/test_grad_approx.py). Every cell of its own is full; ``False`` is kept for
      configuration variants of a full cell that change no structure the costly items
      exercise (``rnn_relu``, ``*_nobias``, ``lstm_proj``, the peephole LSTM with a
      linear projection): their equations are still checked by the NumPy/torch
      references, ``check_grads`` and RTRL == BPTT.
    - ``inputs``: ``(key, T, dtype) -> xs`` when inputs have structure (trees).
    """

    make: Callable
    n_params: int
    numpy: Callable | None = None
    torch: bool = False
    diagonal: bool | int = False
    elman: bool = False
    full: bool = True
    inputs: Callable | None = None

    def __call__(self, dtype):
        return self.make(dtype)


def _keyed(cell, key_seed=5):
    """A wrapper cell whose default carry holds a fixed key (dropout/zoneout active)."""
    return cell._replace(
        initial_carry=lambda p: cell.initial_carry(p, key=jax.random.key(key_seed))
    )


TREE_NODES = 8


def tree_inputs(key, T, dtype):
    """A random tree of T nodes in topological order (node k's parent drawn from k+1..T-1),
    features ~ N(0, 1)."""
    kf, kp = jax.random.split(key)
    parents = [
        int(jax.random.randint(jax.random.fold_in(kp, k), (), k + 1, T)) for k in range(T - 1)
    ]
    feats = jax.random.normal(kf, (T, INPUT_SIZE - 1), dtype)
    return jaxrnn.tree_inputs(feats, np.asarray([*parents, -1]))


LSTM_N = 4 * H * (I + H) + 8 * H
GRU_N = 3 * H * (I + H) + 6 * H
CW_H, CW_PERIODS = 6, (1, 2, 4)
COND = 2  # conditioning width; the wrapped cell reads INPUT_SIZE - COND

# name -> Case. Small sizes keep the battery fast.
CELL_CASES = {
    "rnn_tanh": Case(
        lambda dt: jaxrnn.rnn(I, H, dtype=dt),
        H * (I + H) + 2 * H,
        R.elman(),
        torch=True,
        elman=True,
    ),
    "rnn_relu": Case(
        lambda dt: jaxrnn.rnn(I, H, nonlinearity="relu", dtype=dt),
        H * (I + H) + 2 * H,
        R.elman("relu"),
        torch=True,
        elman=True,
        full=False,
    ),
    "rnn_nobias": Case(
        lambda dt: jaxrnn.rnn(I, H, bias=False, dtype=dt),
        H * (I + H),
        R.elman(),
        torch=True,
        elman=True,
        full=False,
    ),
    "gru": Case(lambda dt: jaxrnn.gru(I, H, dtype=dt), GRU_N, R.gru, torch=True, elman=True),
    "gru_nobias": Case(
        lambda dt: jaxrnn.gru(I, H, bias=False, dtype=dt),
        3 * H * (I + H),
        R.gru,
        torch=True,
        elman=True,
        full=False,
    ),
    "lstm": Case(lambda dt: jaxrnn.lstm(I, H, dtype=dt), LSTM_N, R.lstm, torch=True),
    "lstm_proj": Case(
        lambda dt: jaxrnn.lstm(I, H, proj_size=2, dtype=dt),
        4 * H * (I + 2) + 8 * H + 2 * H,
        R.lstm,
        torch=True,
        full=False,
    ),
    "lstm_nobias": Case(
        lambda dt: jaxrnn.lstm(I, H, bias=False, dtype=dt),
        4 * H * (I + H),
        R.lstm,
        torch=True,
        full=False,
    ),
    "indrnn": Case(
        lambda dt: jaxrnn.indrnn(I, H, dtype=dt),
        H * I + 2 * H,
        R.indrnn,
        diagonal=True,
        elman=True,
    ),
    "peephole_lstm": Case(
        lambda dt: jaxrnn.peephole_lstm(I, H, dtype=dt),
        LSTM_N + 3 * H,
        R.peephole_lstm(),
    ),
    "peephole_lstm_linear_proj": Case(
        lambda dt: jaxrnn.peephole_lstm(
            I, H, proj_size=2, bias=False, output_activation="identity", dtype=dt
        ),
        4 * H * (I + 2) + 3 * H + 2 * H,
        R.peephole_lstm(lambda c: c),
        full=False,
    ),
    "cifg_lstm": Case(lambda dt: jaxrnn.cifg_lstm(I, H, dtype=dt), GRU_N, R.cifg_lstm),
    "lstm_no_forget": Case(
        lambda dt: jaxrnn.lstm_no_forget(I, H, dtype=dt), GRU_N, R.lstm_no_forget
    ),
    "cho_gru": Case(lambda dt: jaxrnn.cho_gru(I, H, dtype=dt), GRU_N, R.cho_gru),
    "mgu": Case(lambda dt: jaxrnn.mgu(I, H, dtype=dt), 2 * H * (I + H) + 4 * H, R.mgu),
    "layer_norm_lstm": Case(
        lambda dt: jaxrnn.layer_norm_lstm(I, H, dtype=dt),
        4 * H * (I + H) + 18 * H + 4 * H,
        R.layer_norm_lstm(1e-5),
    ),
    "min_gru": Case(
        lambda dt: jaxrnn.min_gru(I, H, dtype=dt),
        2 * H * (I + 1),
        R.min_gru,
        diagonal=True,
        elman=True,
    ),
    "min_lstm": Case(
        lambda dt: jaxrnn.min_lstm(I, H, dtype=dt),
        3 * H * (I + 1),
        R.min_lstm,
        diagonal=True,
        elman=True,
        full=False,
    ),
    "lru": Case(
        lambda dt: jaxrnn.lru(I, H, output_size=2, dtype=dt),
        3 * H + 2 * H * I + 2 * 2 * H + 2 * I,
        R.lru,
        diagonal=2,
    ),
    "rg_lru": Case(
        lambda dt: jaxrnn.rg_lru(I, I, dtype=dt),
        2 * I * I + 3 * I,
        R.rg_lru(),
        diagonal=True,
        elman=True,
        full=False,
    ),
    "rg_lru_projected": Case(
        lambda dt: jaxrnn.rg_lru(I, H, dtype=dt),
        2 * H * H + 3 * H + H * I,
        R.rg_lru(),
        full=False,
    ),
    "slstm": Case(
        lambda dt: jaxrnn.slstm(I, 4, num_heads=2, dtype=dt),
        4 * 4 * I + 4 * 4 * 2 + 4 * 4,
        R.slstm(),
    ),
    "slstm_exp": Case(
        lambda dt: jaxrnn.slstm(I, 4, num_heads=1, forget_gate="exp", dtype=dt),
        4 * 4 * I + 4 * 4 * 4 + 4 * 4,
        R.slstm("exp"),
        full=False,
    ),
    "mlstm": Case(
        lambda dt: jaxrnn.mlstm(I, 4, num_heads=2, dtype=dt),
        4 * 4 * (I + 1) + 2 * 2 * (I + 1),
        R.mlstm(2),
    ),
    "mlstm_exp": Case(
        lambda dt: jaxrnn.mlstm(I, 2, forget_gate="exp", dtype=dt),
        4 * 2 * (I + 1) + 2 * (I + 1),
        R.mlstm(1, "exp"),
        full=False,
    ),
    "clockwork_rnn": Case(
        lambda dt: jaxrnn.clockwork_rnn(I, CW_H, num_modules=3, dtype=dt),
        CW_H * I + CW_H**2 + CW_H,
        R.clockwork(CW_PERIODS),
        elman=True,
    ),
    "tree_lstm": Case(
        lambda dt: jaxrnn.child_sum_tree_lstm(I - 1, H, max_nodes=TREE_NODES, dtype=dt),
        4 * H * (I - 1 + H) + 8 * H,
        R.tree_lstm,
        inputs=tree_inputs,
    ),
    "learned_initial_state_lstm": Case(
        lambda dt: jaxrnn.learned_initial_state(jaxrnn.lstm(I, H, dtype=dt)),
        LSTM_N + 2 * H,
        R.learned_initial_state(R.lstm),
    ),
    "conditional_gru": Case(
        lambda dt: jaxrnn.conditional(jaxrnn.gru(I - COND, H, dtype=dt), COND),
        3 * H * (I - COND + H) + 6 * H + H * (COND + 1),
        R.conditional(R.gru, COND),
    ),
    "variational_dropout_gru": Case(
        lambda dt: _keyed(
            jaxrnn.variational_dropout(
                jaxrnn.gru(I, H, dtype=dt), input_rate=0.4, recurrent_rate=0.4
            )
        ),
        GRU_N,
        R.variational_dropout_gru,
        elman=True,
    ),
    "zoneout_lstm": Case(
        lambda dt: _keyed(jaxrnn.zoneout(jaxrnn.lstm(I, H, dtype=dt), 0.3, cell_rate=0.5)),
        LSTM_N,
    ),
}
FULL_CASES = sorted(n for n, c in CELL_CASES.items() if c.full)


@pytest.fixture(params=sorted(CELL_CASES))
def cell_case(request):
    """``(name, case)``; ``case(dtype) -> Cell``; parametrised over every cell."""
    return request.param, CELL_CASES[request.param]


@pytest.fixture(params=FULL_CASES)
def full_case(request):
    """``(name, case)`` over the representative configuration of each family."""
    return request.param, CELL_CASES[request.param]


@pytest.fixture
def key():
    return jax.random.key(0)


def random_inputs(key, T: int, input_size: int = INPUT_SIZE, dtype=jnp.float64):
    return jax.random.normal(key, (T, input_size), dtype)


def case_inputs(case, key, T: int, dtype=jnp.float64):
    """Inputs for ``case``: its own generator (trees), else N(0, 1) of width INPUT_SIZE."""
    if case.inputs is not None:
        return case.inputs(key, T, dtype)
    return random_inputs(key, T, dtype=dtype)
