"""jaxrnn: recurrent neural networks in JAX.

A cell is a pure step function ``step(params, carry, x) -> (carry, y)`` for one
example; :mod:`jaxrnn.sequence` lifts it over time with ``jax.lax.scan``,
``jax.vmap`` batches it, :mod:`jaxrnn.nn` gives the PyTorch-shaped layers.
"""

from jaxrnn import (
    grad,
    initializers,
    nn,
    sequence,
)
from jaxrnn.base import Cell, Layer
from jaxrnn.cells import GRUParams, LSTMCarry, LSTMParams, RNNParams, gru, lstm, rnn
from jaxrnn.interop import from_torch, load_state_dict, state_dict, to_torch
from jaxrnn.sequence import apply_batched, bidirectional, recurrent, scan, stack

__version__ = "0.1.0"

__all__ = [
    "Cell",
    "GRUParams",
    "LSTMCarry",
    "LSTMParams",
    "Layer",
    "RNNParams",
    "apply_batched",
    "bidirectional",
    "from_torch",
    "gru",
    "initializers",
    "load_state_dict",
    "lstm",
    "nn",
    "recurrent",
    "rnn",
    "scan",
    "sequence",
    "stack",
    "state_dict",
    "to_torch",
]
