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
from jaxrnn.cells.lru import LRUCarry, LRUParams, lru
from jaxrnn.cells.lstm import LSTMCarry, LSTMParams, lstm
from jaxrnn.cells.lstm_no_forget import LSTMNoForgetParams, lstm_no_forget
from jaxrnn.cells.mgu import MGUParams, mgu
from jaxrnn.cells.min_gru import MinGRUParams, min_gru
from jaxrnn.cells.min_lstm import MinLSTMParams, min_lstm
from jaxrnn.cells.mixed_precision import mixed_precision
from jaxrnn.cells.mlstm import MLSTMCarry, MLSTMParams, mlstm
from jaxrnn.cells.peephole_lstm import PeepholeLSTMParams, peephole_lstm
from jaxrnn.cells.rg_lru import RGLRUParams, rg_lru
from jaxrnn.cells.rnn import RNNParams, rnn
from jaxrnn.cells.slstm import SLSTMCarry, SLSTMParams, slstm
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
    "LRUCarry",
    "LRUParams",
    "LSTMCarry",
    "LSTMNoForgetParams",
    "LSTMParams",
    "LayerNormLSTMParams",
    "LearnedStateParams",
    "MGUParams",
    "MLSTMCarry",
    "MLSTMParams",
    "MinGRUParams",
    "MinLSTMParams",
    "PeepholeLSTMParams",
    "RGLRUParams",
    "RNNParams",
    "SLSTMCarry",
    "SLSTMParams",
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
    "lru",
    "lstm",
    "lstm_no_forget",
    "mgu",
    "min_gru",
    "min_lstm",
    "mixed_precision",
    "mlstm",
    "peephole_lstm",
    "rg_lru",
    "rnn",
    "slstm",
    "stack_cells",
    "tree_inputs",
    "variational_dropout",
    "zoneout",
]
