"""Built-in recurrent cells. Each factory returns a :class:`jaxrnn.Cell`."""

from jaxrnn.cells.gru import GRUParams, gru
from jaxrnn.cells.indrnn import IndRNNParams, indrnn
from jaxrnn.cells.lstm import LSTMCarry, LSTMParams, lstm
from jaxrnn.cells.rnn import RNNParams, rnn
from jaxrnn.cells.stacked import stack_cells

__all__ = [
    "GRUParams",
    "IndRNNParams",
    "LSTMCarry",
    "LSTMParams",
    "RNNParams",
    "gru",
    "indrnn",
    "lstm",
    "rnn",
    "stack_cells",
]
