"""jaxrnn: recurrent neural networks in JAX.

A cell is a pure step function ``step(params, carry, x) -> (carry, y)`` for one
example; :mod:`jaxrnn.sequence` lifts it over time with ``jax.lax.scan``,
``jax.vmap`` batches it, :mod:`jaxrnn.nn` gives the PyTorch-shaped layers.
"""

from jaxrnn import initializers, sequence
from jaxrnn.base import Cell, Layer
from jaxrnn.cells import GRUParams, LSTMCarry, LSTMParams, RNNParams, gru, lstm, rnn
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
    "gru",
    "initializers",
    "lstm",
    "recurrent",
    "rnn",
    "scan",
    "sequence",
    "stack",
]
