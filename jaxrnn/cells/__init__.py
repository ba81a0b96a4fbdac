"""Built-in recurrent cells and cell wrappers. Each factory returns a :class:`jaxrnn.Cell`."""

from jaxrnn.cells.cho_gru import ChoGRUParams, cho_gru
from jaxrnn.cells.cifg_lstm import CIFGLSTMParams, cifg_lstm
from jaxrnn.cells.clockwork import ClockworkCarry, ClockworkParams, clockwork_rnn
from jaxrnn.cells.conditional import (
    ConditionalCarry,
    ConditionalParams,
    StateMap,
    StateMapParams,
    conditional,
    conditional_state,
)
from jaxrnn.cells.gru import GRUParams, gru
from jaxrnn.cells.indrnn import IndRNNParams, indrnn
from jaxrnn.cells.layer_norm_lstm import LayerNormLSTMParams, layer_norm_lstm
from jaxrnn.cells.learned_initial_state import LearnedStateParams, learned_initial_state
from jaxrnn.cells.lstm import LSTMCarry, LSTMParams, lstm
from jaxrnn.cells.lstm_no_forget import LSTMNoForgetParams, lstm_no_forget
from jaxrnn.cells.mgu import MGUParams, mgu
from jaxrnn.cells.peephole_lstm import PeepholeLSTMParams, peephole_lstm
from jaxrnn.cells.rnn import RNNParams, rnn
from jaxrnn.cells.stacked import stack_cells
from jaxrnn.cells.tree_lstm import (
    TreeLSTMCarry,
    TreeLSTMParams,
    child_sum_tree_lstm,
    tree_inputs,
)
from jaxrnn.cells.variational_dropout import DropoutCarry, variational_dropout
from jaxrnn.cells.zoneout import ZoneoutCarry, zoneout

__all__ = [
    "CIFGLSTMParams",
    "ChoGRUParams",
    "ClockworkCarry",
    "ClockworkParams",
    "ConditionalCarry",
    "ConditionalParams",
    "DropoutCarry",
    "GRUParams",
    "IndRNNParams",
    "LSTMCarry",
    "LSTMNoForgetParams",
    "LSTMParams",
    "LayerNormLSTMParams",
    "LearnedStateParams",
    "MGUParams",
    "PeepholeLSTMParams",
    "RNNParams",
    "StateMap",
    "StateMapParams",
    "TreeLSTMCarry",
    "TreeLSTMParams",
    "ZoneoutCarry",
    "child_sum_tree_lstm",
    "cho_gru",
    "cifg_lstm",
    "clockwork_rnn",
    "conditional",
    "conditional_state",
    "gru",
    "indrnn",
    "layer_norm_lstm",
    "learned_initial_state",
    "lstm",
    "lstm_no_forget",
    "mgu",
    "peephole_lstm",
    "rnn",
    "stack_cells",
    "tree_inputs",
    "variational_dropout",
    "zoneout",
]
