"""Conversion between PyTorch recurrent modules and jaxrnn layers and cells.

``torch`` is imported lazily inside the functions that need it, so jaxrnn never
requires it; :func:`state_dict` and :func:`load_state_dict` work without torch at all.

- :func:`from_torch`: ``torch.nn.RNN/GRU/LSTM`` (any options) -> ``(jaxrnn.nn layer,
  params)``; ``torch.nn.RNNCell/GRUCell/LSTMCell`` -> ``(jaxrnn.Cell, params)``. The
  dtype of the parameters follows the module's.
- :func:`to_torch`: the reverse, with the weights loaded.
- :func:`state_dict` / :func:`load_state_dict`: params <-> ``{torch name: numpy array}``.

Names (PyTorch's): for layer ``k`` and direction suffix ``sfx`` (``""`` or
``"_reverse"``), ``weight_ih_l{k}{sfx} = params[k][d].w_ih``, ``weight_hh_l{k}{sfx} =
w_hh``, ``bias_ih_l{k}{sfx} = b_ih``, ``bias_hh_l{k}{sfx} = b_hh``, ``weight_hr_l{k}{sfx}
= w_hr``; for cells ``weight_ih, weight_hh, bias_ih, bias_hh``. No reshuffling is needed:
jaxrnn uses PyTorch's layout and gate order.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn.base import Cell, Params
from jaxrnn.cells import GRUParams, LSTMParams, RNNParams, gru, lstm, rnn
from jaxrnn.engine import check_params
from jaxrnn.nn import GRU, LSTM, RNN

__all__ = ["from_torch", "load_state_dict", "state_dict", "to_torch"]

_FIELDS = {"w_ih": "weight_ih", "w_hh": "weight_hh", "b_ih": "bias_ih", "b_hh": "bias_hh"}
_FIELDS_LSTM = {**_FIELDS, "w_hr": "weight_hr"}
NNLayer = RNN | GRU | LSTM


def _to_numpy(t) -> np.ndarray:
    import torch

    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        return t.float().numpy().astype(jnp.bfloat16)
    return t.numpy().copy()


def _to_tensor(a):
    import torch

    a = np.asarray(a)
    if a.dtype == jnp.bfloat16:
        return torch.from_numpy(a.astype(np.float32)).to(torch.bfloat16)
    return torch.from_numpy(np.array(a, copy=True))


def _module_dtype(module) -> np.dtype:
    p = next(module.parameters())
    return _to_numpy(p.new_zeros(())).dtype


def _names(layer: NNLayer) -> list[tuple[int, int, str, str]]:
    """``(k, d, field, torch_name)`` in PyTorch's ``state_dict`` order."""
    fields = _FIELDS_LSTM if isinstance(layer, LSTM) else _FIELDS
    out = []
    for k in range(layer.num_layers):
        for d in range(layer.num_directions):
            sfx = "_reverse" if d else ""
            for f, name in fields.items():
                out.append((k, d, f, f"{name}_l{k}{sfx}"))
    return out


_TORCH_CELLS = {"rnn": "RNNCell", "gru": "GRUCell", "lstm": "LSTMCell"}


def _torch_cell(cell: Cell, params: Params):
    """The ``torch.nn`` cell class name and its keyword arguments for a built-in cell,
    read from the cell's own description (``cell.config``)."""
    kind = None if cell.config is None else cell.config.kind
    if kind not in _TORCH_CELLS:
        raise ValueError(
            "cell must be a built-in rnn, gru or lstm cell (torch has no other), got "
            + ("a user-defined cell" if kind is None else f"a {kind} cell")
        )
    opts = cell.config.options
    if kind == "lstm" and opts["proj_size"]:
        raise ValueError("torch.nn.LSTMCell has no projection; build the cell with proj_size=0")
    kwargs = {"bias": opts["bias"]}
    if kind == "rnn":
        kwargs["nonlinearity"] = opts["nonlinearity"]
    return _TORCH_CELLS[kind], (opts["input_size"], opts["hidden_size"]), kwargs


# ------------------------------------------------------------------------ state dicts


def state_dict(layer: NNLayer | Cell, params: Params) -> dict[str, np.ndarray]:
    """Params as ``{PyTorch name: numpy array}`` in PyTorch's order.

    ``layer`` is a :mod:`jaxrnn.nn` layer (keys ``weight_ih_l0``, ...,
    ``weight_hh_l1_reverse``, ...) or a built-in :class:`~jaxrnn.Cell` (keys
    ``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``). Absent tensors (no bias, no
    projection) are left out, as in PyTorch. Load into torch with
    ``module.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})``.
    """
    if isinstance(layer, Cell):
        if not isinstance(params, (RNNParams, GRUParams, LSTMParams)):
            raise ValueError(
                "params must be RNNParams, GRUParams or LSTMParams (a built-in cell), "
                f"got {type(params).__name__}"
            )
        check_params(layer, params)
        fields = _FIELDS_LSTM if isinstance(params, LSTMParams) else _FIELDS
        return {
            name: np.asarray(getattr(params, f))
            for f, name in fields.items()
            if getattr(params, f) is not None
        }
    if not isinstance(layer, (RNN, GRU, LSTM)):
        raise ValueError(f"layer must be a jaxrnn.nn RNN/GRU/LSTM or a Cell, got {layer!r}")
    layer._check_params(params)
    out = {}
    for k, d, f, name in _names(layer):
        a = getattr(params[k][d], f)
        if a is not None:
            out[name] = np.asarray(a)
    return out


def load_state_dict(layer: NNLayer | Cell, state_dict: dict[str, Any]) -> Params:
    """The inverse of :func:`state_dict`: ``{PyTorch name: array}`` -> params.

    Accepts numpy arrays, jax arrays or torch tensors (e.g. ``module.state_dict()``).
    Arrays keep their (floating) dtype. Raises ``ValueError`` on a missing or unexpected
    key, a wrong shape or a non-floating dtype, naming the key and what was expected.
    """
    if isinstance(layer, Cell):
        template = jax.eval_shape(layer.init, jax.random.key(0))
        if not isinstance(template, (RNNParams, GRUParams, LSTMParams)):
            raise ValueError(
                "layer must be a built-in cell (params RNNParams, GRUParams or LSTMParams), "
                f"got params {type(template).__name__}"
            )
        fields = _FIELDS_LSTM if isinstance(template, LSTMParams) else _FIELDS
        entries = [((), f, name) for f, name in fields.items()]
    elif isinstance(layer, (RNN, GRU, LSTM)):
        template = layer._param_shapes
        entries = [((k, d), f, name) for k, d, f, name in _names(layer)]
    else:
        raise ValueError(f"layer must be a jaxrnn.nn RNN/GRU/LSTM or a Cell, got {layer!r}")

    def node(idx):
        out = template
        for i in idx:
            out = out[i]
        return out

    expected = {name: getattr(node(idx), f) for idx, f, name in entries}
    expected = {n: s for n, s in expected.items() if s is not None}
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"state_dict keys do not match the layer: missing {missing}, unexpected {unexpected}"
        )
    values = {}
    for name, shape in expected.items():
        v = state_dict[name]
        v = _to_numpy(v) if type(v).__module__.startswith("torch") else v
        v = jnp.asarray(v)
        if v.shape != shape.shape:
            raise ValueError(f"state_dict[{name!r}] must have shape {shape.shape}, got {v.shape}")
        if not jnp.issubdtype(v.dtype, jnp.floating):
            raise ValueError(f"state_dict[{name!r}] must have a floating dtype, got {v.dtype}")
        values[name] = v

    def build(idx):
        t = node(idx)
        kwargs = dict.fromkeys(t._fields)
        kwargs.update({f: values.get(name) for i, f, name in entries if i == idx})
        return type(t)(**kwargs)

    if isinstance(layer, Cell):
        return build(())
    return tuple(
        tuple(build((k, d)) for d in range(layer.num_directions)) for k in range(layer.num_layers)
    )


# ------------------------------------------------------------------------- conversion


def from_torch(module) -> tuple[NNLayer | Cell, Params]:
    """A PyTorch recurrent module as ``(layer, params)`` computing the same function.

    ``torch.nn.RNN`` / ``GRU`` / ``LSTM`` (any ``num_layers``, ``bias``, ``batch_first``,
    ``dropout``, ``bidirectional``, ``proj_size``, ``nonlinearity``) give a
    :mod:`jaxrnn.nn` layer with the same configuration; ``torch.nn.RNNCell`` /
    ``GRUCell`` / ``LSTMCell`` give a :class:`~jaxrnn.Cell` (:func:`jaxrnn.rnn`,
    :func:`jaxrnn.gru`, :func:`jaxrnn.lstm`). ``params`` are copies of the module's
    weights with the module's dtype. Dropout applies in ``apply`` only when a ``key``
    is passed, whatever ``module.training`` is.
    """
    import torch

    nn = torch.nn
    dtype = _module_dtype(module)
    if isinstance(module, (nn.RNN, nn.GRU, nn.LSTM)):
        common = dict(
            input_size=module.input_size,
            hidden_size=module.hidden_size,
            num_layers=module.num_layers,
            bias=module.bias,
            batch_first=module.batch_first,
            dropout=float(module.dropout),
            bidirectional=module.bidirectional,
            dtype=dtype,
        )
        if isinstance(module, nn.LSTM):
            layer = LSTM(**common, proj_size=module.proj_size)
        elif isinstance(module, nn.GRU):
            layer = GRU(**common)
        else:
            layer = RNN(**common, nonlinearity=module.nonlinearity)
        return layer, load_state_dict(layer, module.state_dict())
    if isinstance(module, (nn.RNNCell, nn.GRUCell, nn.LSTMCell)):
        args = (module.input_size, module.hidden_size)
        kw = dict(bias=module.bias, dtype=dtype)
        if isinstance(module, nn.LSTMCell):
            cell = lstm(*args, **kw)
        elif isinstance(module, nn.GRUCell):
            cell = gru(*args, **kw)
        else:
            cell = rnn(*args, nonlinearity=module.nonlinearity, **kw)
        return cell, load_state_dict(cell, module.state_dict())
    raise ValueError(
        "module must be a torch.nn.RNN, GRU, LSTM, RNNCell, GRUCell or LSTMCell, "
        f"got {type(module).__name__}"
    )


def to_torch(layer: NNLayer | Cell, params: Params):
    """A PyTorch module with the configuration of ``layer`` and the weights ``params``.

    A :mod:`jaxrnn.nn` layer gives ``torch.nn.RNN/GRU/LSTM``; a built-in cell gives
    ``torch.nn.RNNCell/GRUCell/LSTMCell`` (configured from ``cell.config``: kind,
    sizes, bias and nonlinearity). The module's dtype is that of ``params``.
    """
    import torch

    sd = state_dict(layer, params)
    dtype = _to_tensor(next(iter(sd.values()))[:0]).dtype
    nn = torch.nn
    if isinstance(layer, Cell):
        name, args, kwargs = _torch_cell(layer, params)
        module = getattr(nn, name)(*args, **kwargs, dtype=dtype)
    else:
        common = dict(
            input_size=layer.input_size,
            hidden_size=layer.hidden_size,
            num_layers=layer.num_layers,
            bias=layer.bias,
            batch_first=layer.batch_first,
            dropout=layer.dropout,
            bidirectional=layer.bidirectional,
            dtype=dtype,
        )
        if isinstance(layer, LSTM):
            module = nn.LSTM(**common, proj_size=layer.proj_size)
        elif isinstance(layer, GRU):
            module = nn.GRU(**common)
        else:
            module = nn.RNN(**common, nonlinearity=layer.nonlinearity)
    module.load_state_dict({k: _to_tensor(v) for k, v in sd.items()})
    return module
