"""Conversion between jaxrnn and other frameworks.

:mod:`jaxrnn.interop.torch`: PyTorch ``nn.RNN/GRU/LSTM`` and their cells, both ways
(torch is imported lazily, only when a conversion needs it).

:mod:`jaxrnn.interop.flax` (imported explicitly, it loads ``flax.nnx``): jaxrnn cells
and layers as Flax NNX and linen modules, and Flax's recurrent cells' parameters to
and from jaxrnn's.
"""

from jaxrnn.interop.torch import from_torch, load_state_dict, state_dict, to_torch

__all__ = ["from_torch", "load_state_dict", "state_dict", "to_torch"]
