"""jaxrnn: recurrent neural networks in JAX.

A cell is a pure step function ``step(params, carry, x) -> (carry, y)`` for one
example; :mod:`jaxrnn.engine` runs it over time (``jax.lax.scan``, or the cell's fused
whole-sequence path) and :mod:`jaxrnn.sequence` builds layers on it,
``jax.vmap`` batches it, :mod:`jaxrnn.nn` gives the PyTorch-shaped layers and
:mod:`jaxrnn.grad` the gradient methods (BPTT, RTRL and the online approximations).
Training (:mod:`jaxrnn.train`) and tasks (:mod:`jaxrnn.tasks`) are imported on demand.
"""

from jaxrnn import cells, engine, grad, initializers, nn, sequence
from jaxrnn.base import Cell, Layer, Projection
from jaxrnn.cells import (
    GRUParams,
    IndRNNParams,
    LSTMCarry,
    LSTMParams,
    RNNParams,
    gru,
    indrnn,
    lstm,
    rnn,
    stack_cells,
)
from jaxrnn.interop import from_torch, load_state_dict, state_dict, to_torch
from jaxrnn.sequence import apply_batched, bidirectional, recurrent, scan, stack

__version__ = "0.1.0"

__all__ = [
    "Cell",
    "GRUParams",
    "IndRNNParams",
    "LSTMCarry",
    "LSTMParams",
    "Layer",
    "Projection",
    "RNNParams",
    "apply_batched",
    "bidirectional",
    "cells",
    "engine",
    "from_torch",
    "grad",
    "gru",
    "indrnn",
    "initializers",
    "load_state_dict",
    "lstm",
    "nn",
    "recurrent",
    "rnn",
    "scan",
    "sequence",
    "stack",
    "stack_cells",
    "state_dict",
    "to_torch",
]
