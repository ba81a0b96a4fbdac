"""Built-in recurrent cells. Each factory returns a :class:`jaxrnn.Cell`."""

from jaxrnn.cells.gru import GRUParams, gru
from jaxrnn.cells.lstm import LSTMCarry, LSTMParams, lstm
from jaxrnn.cells.rnn import RNNParams, rnn

__all__ = ["GRUParams", "LSTMCarry", "LSTMParams", "RNNParams", "gru", "lstm", "rnn"]
