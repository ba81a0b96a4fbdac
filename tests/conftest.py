"""Test configuration: float64 and strict dtype promotion, and the registry of cells.

Every cell the library ships enters ``CELL_CASES``; the generic battery
(``tests/test_cells.py``), the sequence tests and the gradient tests (RTRL == BPTT)
run over all of them. A new cell adds one line here.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import pytest
from hypothesis import settings

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")

import jaxrnn  # noqa: E402

# CI runs property tests with a fixed seed sequence, so a green run is reproducible;
# locally hypothesis explores new examples every run.
settings.register_profile("ci", derandomize=True, deadline=None)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

INPUT_SIZE = 3
HIDDEN_SIZE = 5

# name -> factory(dtype) -> Cell. Small sizes keep the battery fast.
CELL_CASES = {
    "rnn_tanh": lambda dt: jaxrnn.rnn(INPUT_SIZE, HIDDEN_SIZE, dtype=dt),
    "rnn_relu": lambda dt: jaxrnn.rnn(INPUT_SIZE, HIDDEN_SIZE, nonlinearity="relu", dtype=dt),
    "rnn_nobias": lambda dt: jaxrnn.rnn(INPUT_SIZE, HIDDEN_SIZE, bias=False, dtype=dt),
    "gru": lambda dt: jaxrnn.gru(INPUT_SIZE, HIDDEN_SIZE, dtype=dt),
    "gru_nobias": lambda dt: jaxrnn.gru(INPUT_SIZE, HIDDEN_SIZE, bias=False, dtype=dt),
    "lstm": lambda dt: jaxrnn.lstm(INPUT_SIZE, HIDDEN_SIZE, dtype=dt),
    "lstm_proj": lambda dt: jaxrnn.lstm(INPUT_SIZE, HIDDEN_SIZE, proj_size=2, dtype=dt),
    "lstm_forget_bias": lambda dt: jaxrnn.lstm(INPUT_SIZE, HIDDEN_SIZE, forget_bias=1.0, dtype=dt),
    "lstm_nobias": lambda dt: jaxrnn.lstm(INPUT_SIZE, HIDDEN_SIZE, bias=False, dtype=dt),
    "indrnn": lambda dt: jaxrnn.cells.indrnn(INPUT_SIZE, HIDDEN_SIZE, dtype=dt),
}


@pytest.fixture(params=sorted(CELL_CASES))
def cell_case(request):
    """``(name, make)`` where ``make(dtype) -> Cell``; parametrised over every cell."""
    return request.param, CELL_CASES[request.param]


@pytest.fixture
def key():
    return jax.random.key(0)


def random_inputs(key, T: int, input_size: int = INPUT_SIZE, dtype=jnp.float64):
    return jax.random.normal(key, (T, input_size), dtype)
