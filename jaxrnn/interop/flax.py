r"""Flax interop: jaxrnn cells and layers inside Flax NNX (and linen) models, and
parameter conversion from and to Flax's recurrent cells.

Import it explicitly (``from jaxrnn.interop import flax as jflax``); ``import jaxrnn``
does not load ``flax.nnx``.

Wrappers
--------

- :class:`NNXCell` ``(cell, *, rngs)``: an ``nnx.Module`` holding a jaxrnn
  :class:`~jaxrnn.Cell`'s params as ``nnx.Param`` leaves (the params NamedTuple, so
  ``nnx.state(m)`` paths read ``params/w_ih``...). ``m(carry, x)`` takes ``x
  (*batch, I)`` with any leading batch shape (``vmap`` of ``cell.step``) and
  ``m.initialize_carry(input_shape)`` broadcasts ``cell.initial_carry(params)`` to
  ``input_shape[:-1]``, like Flax's cells.
- :class:`NNXLayer` ``(layer, *, rngs)``: the same for a whole-sequence model: a
  :mod:`jaxrnn.nn` ``RNN/GRU/LSTM`` (called like it: ``m(x, hx=None, *, lengths=None,
  key=None)``), a :class:`~jaxrnn.Layer` or a ``Cell`` (lifted by
  :func:`jaxrnn.recurrent`; ``m(xs (*batch, T, I), carry=None, *, length=None,
  mask=None, reset=None, key=None)``).
- :class:`LinenCell`: a ``flax.linen`` module with field ``cell`` (params in one
  ``"params"`` collection entry ``"cell"``).

All of them train with ``nnx.Optimizer(model, tx, wrt=nnx.Param)`` and
``nnx.value_and_grad`` (or ``linen``'s ``init``/``apply``), and compute exactly what
the functional path computes on the same params (``tests/test_flax.py``).

Conversions
-----------

:func:`from_flax` ``(module, variables=None) -> (cell, params)`` and
:func:`to_flax` ``(params, module)``. Flax kernels are ``(in, out)`` (``y = x K + b``),
jaxrnn's weights are PyTorch's ``(out, in)``, so every kernel is transposed. Gate
orders agree (LSTM ``i, f, g, o``; GRU ``r, z, n``); Flax's LSTM carry is ``(c, h)``,
jaxrnn's ``LSTMCarry(h, c)`` (:func:`carry_from_flax`, :func:`carry_to_flax`).

=========================================  ==========================================
Flax cell (linen and nnx)                  jaxrnn params
=========================================  ==========================================
``LSTMCell``: ``i{g}`` kernels (no bias),  ``lstm``: ``w_ih = [K_ii K_if K_ig K_io]^T``,
``h{g}`` kernels and biases, g=i,f,g,o     ``w_hh = [K_hi .. K_ho]^T``, ``b_ih = 0``,
(nnx: attribute ``if_``)                   ``b_hh = [b_hi .. b_ho]``
``OptimizedLSTMCell`` (linen: the same     the same; nnx: ``w_ih = dense_i.kernel^T``,
names; nnx: ``dense_i`` (I, 4H) no bias,   ``w_hh = dense_h.kernel^T``,
``dense_h`` (H, 4H) with bias)             ``b_hh = dense_h.bias``, ``b_ih = 0``
linen ``GRUCell``: ``ir, iz, in`` with     ``gru``: ``w_ih = [K_ir K_iz K_in]^T``,
bias, ``hr, hz`` without, ``hn`` with      ``b_ih = [b_ir b_iz b_in]``,
                                           ``w_hh = [K_hr K_hz K_hn]^T``,
                                           ``b_hh = [0 0 b_hn]``
nnx ``GRUCell``: ``dense_i`` (I, 3H) with  ``gru`` with ``b_hh = 0``
bias, ``dense_h`` (H, 3H) **no bias**
``SimpleCell`` (``i`` with bias, ``h``     ``rnn`` (tanh or relu): ``w_hh = K_h^T (+ 1``
without; ``residual`` adds ``h``)          ``if residual)``, ``b_ih = b_i``, ``b_hh = 0``
=========================================  ==========================================

Which directions are exact:

- Flax -> jaxrnn: every row above is exact (the same arithmetic up to the order of two
  additions; equal outputs to 1e-10 in float64, tested).
- jaxrnn -> Flax: LSTM and linen GRU are exact: Flax has one bias where jaxrnn has
  two, so it gets their sum (``b = b_ih + b_hh``; for the GRU the ``r`` and ``z``
  blocks of ``b_hh`` fold into Flax's input biases and ``b_hn`` stays separate,
  because the reset multiplies it). jaxrnn -> **nnx** ``GRUCell`` is exact only when
  ``b_hn = b_hh[2H:3H]`` is zero: nnx computes ``n = tanh(W_in x + b_in + r * (W_hn
  h))`` with no bias inside the reset product, so a nonzero ``b_hn`` cannot be
  represented and :func:`to_flax` raises ``ValueError`` (use linen's ``GRUCell``,
  which has it). ``SimpleCell`` is exact (``residual`` subtracts the identity).
- Refused with ``ValueError``: an LSTM with a projection (``w_hr``; Flax has none),
  Flax cells whose ``gate_fn`` is not ``sigmoid`` or whose ``activation_fn`` is not
  ``tanh`` (``tanh``/``relu`` for ``SimpleCell``), shape mismatches, any other module.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import flax.linen as linen
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxrnn.base import Array, Carry, Cell, Layer, Params
from jaxrnn.cells import GRUParams, LSTMCarry, LSTMParams, RNNParams, gru, lstm, rnn
from jaxrnn.nn import GRU, LSTM, RNN
from jaxrnn.sequence import apply_batched, recurrent

__all__ = [
    "LinenCell",
    "NNXCell",
    "NNXLayer",
    "carry_from_flax",
    "carry_to_flax",
    "from_flax",
    "to_flax",
]


# ------------------------------------------------------------------------- wrappers


def _as_params(tree: Params) -> Params:
    """A params pytree with every array leaf wrapped in ``nnx.Param``."""
    return nnx.data(jax.tree_util.tree_map(nnx.Param, tree))


def _values(tree: Params) -> Params:
    """The arrays inside a pytree of ``nnx.Variable`` leaves."""
    return jax.tree_util.tree_map(
        lambda v: v[...], tree, is_leaf=lambda v: isinstance(v, nnx.Variable)
    )


def _check_input(name: str, x: Any, size: int | None, min_ndim: int, layout: str) -> None:
    shape = getattr(x, "shape", None)
    if shape is None or len(shape) < min_ndim:
        raise ValueError(f"{name} must be an array of shape {layout}, got {shape}")
    if size is not None and shape[-1] != size:
        raise ValueError(f"{name} must have shape {layout} with last axis {size}, got {shape}")


def _broadcast(tree: Carry, batch: tuple[int, ...]) -> Carry:
    return jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (*batch, *jnp.shape(a))), tree)


def batched_step(cell: Cell, params: Params, carry: Carry, x: Array) -> tuple[Carry, Array]:
    """``cell.step`` over any leading batch shape: ``x (*batch, I)``, carry leaves
    ``(*batch, ...)`` -> ``(carry, y (*batch, O))`` (``jax.vmap`` of the flattened batch)."""
    batch = tuple(x.shape[:-1])
    n = math.prod(batch)
    flat = lambda a: a.reshape((n, *a.shape[len(batch) :]))  # noqa: E731
    unflat = lambda a: a.reshape((*batch, *a.shape[1:]))  # noqa: E731
    c, y = jax.vmap(cell.step, in_axes=(None, 0, 0))(
        params, jax.tree_util.tree_map(flat, carry), flat(x)
    )
    return jax.tree_util.tree_map(unflat, c), unflat(y)


class NNXCell(nnx.Module):
    """A jaxrnn :class:`~jaxrnn.Cell` as an ``nnx.Module``.

    Args:
      cell: any cell (built-in, wrapped, stacked or user-defined).
      rngs: ``nnx.Rngs``; ``rngs.params()`` draws ``cell.init``'s key.
      params: optional initial params (e.g. from :func:`from_flax` or a checkpoint)
        instead of ``cell.init``.

    ``self.params`` is the cell's params pytree with ``nnx.Param`` leaves
    (:attr:`value` gives the plain arrays). ``m(carry, x)`` computes
    ``vmap(cell.step)`` over every leading axis of ``x (*batch, I)``; carry leaves are
    ``(*batch, ...)``. ``m.initialize_carry(input_shape)`` broadcasts
    ``cell.initial_carry(params)`` to ``input_shape[:-1]`` (Flax's convention: the
    shape of one step's input, batch dimensions first).
    """

    def __init__(self, cell: Cell, *, rngs: nnx.Rngs, params: Params | None = None):
        if not isinstance(cell, Cell):
            raise TypeError(f"cell must be a jaxrnn.Cell, got {type(cell).__name__}")
        self.cell = nnx.static(cell)
        self.params = _as_params(cell.init(rngs.params()) if params is None else params)

    @property
    def value(self) -> Params:
        """The params as plain arrays (the cell's params NamedTuple)."""
        return _values(self.params)

    def initialize_carry(self, input_shape: tuple[int, ...]) -> Carry:
        """The initial carry with leaves ``(*input_shape[:-1], ...)``."""
        if len(input_shape) < 1:
            raise ValueError(f"input_shape must be (*batch, input_size), got {input_shape}")
        carry = self.cell.initial_carry(self.value)
        return _broadcast(carry, tuple(input_shape[:-1]))

    def __call__(self, carry: Carry, x: Array) -> tuple[Carry, Array]:
        _check_input("x", x, self.cell.input_size, 1, "(*batch, input_size)")
        return batched_step(self.cell, self.value, carry, x)


NNLayer = RNN | GRU | LSTM


class NNXLayer(nnx.Module):
    """A jaxrnn sequence model as an ``nnx.Module``.

    Args:
      layer: a :mod:`jaxrnn.nn` ``RNN``/``GRU``/``LSTM`` object, a
        :class:`~jaxrnn.Layer`, or a :class:`~jaxrnn.Cell` (lifted by
        :func:`jaxrnn.recurrent`).
      rngs: ``nnx.Rngs``; ``rngs.params()`` draws ``layer.init``'s key.
      params: optional initial params instead of ``layer.init``.

    Calls:

    - :mod:`jaxrnn.nn` layer: ``m(x, hx=None, *, lengths=None, key=None)`` is
      ``layer.apply(params, ...)`` (PyTorch's shapes and returns).
    - ``Layer``/``Cell``: ``m(xs, carry=None, *, length=None, mask=None, reset=None,
      key=None) -> (carry, ys)`` with ``xs (*batch, T, I)`` for any leading batch shape
      (:func:`jaxrnn.apply_batched`; ``xs (T, I)`` runs one example).
    """

    def __init__(self, layer: NNLayer | Layer | Cell, *, rngs: nnx.Rngs, params: Params = None):
        if isinstance(layer, Cell):
            layer = recurrent(layer)
        if not isinstance(layer, (RNN, GRU, LSTM, Layer)):
            raise TypeError(
                "layer must be a jaxrnn.nn RNN/GRU/LSTM, a jaxrnn.Layer or a jaxrnn.Cell, "
                f"got {type(layer).__name__}"
            )
        self.layer = nnx.static(layer)
        self.params = _as_params(layer.init(rngs.params()) if params is None else params)

    @property
    def value(self) -> Params:
        """The params as plain arrays."""
        return _values(self.params)

    def initialize_carry(self, input_shape: tuple[int, ...]) -> Carry:
        """Initial state for inputs of shape ``input_shape``.

        A :mod:`jaxrnn.nn` layer: its zero ``hx`` (``input_shape`` as for ``apply``:
        ``(T, B, I)``, ``(B, T, I)`` with ``batch_first`` or ``(T, I)``). A ``Layer``:
        ``layer.initial_carry(params)`` broadcast to ``input_shape[:-2]``
        (``input_shape = (*batch, T, I)``).
        """
        layer = self.layer
        if isinstance(layer, (RNN, GRU, LSTM)):
            if len(input_shape) == 2:
                return layer.initial_state(None)
            if len(input_shape) != 3:
                raise ValueError(
                    f"input_shape must be (T, B, I), (B, T, I) or (T, I), got {input_shape}"
                )
            return layer.initial_state(input_shape[0 if layer.batch_first else 1])
        if len(input_shape) < 2:
            raise ValueError(f"input_shape must be (*batch, T, input_size), got {input_shape}")
        return _broadcast(layer.initial_carry(self.value), tuple(input_shape[:-2]))

    def __call__(self, xs: Array, carry: Any = None, **kwargs):
        layer = self.layer
        if isinstance(layer, (RNN, GRU, LSTM)):
            return layer.apply(self.value, xs, carry, **kwargs)
        _check_input("xs", xs, layer.input_size, 2, "(*batch, T, input_size)")
        if xs.ndim == 2:
            return layer.apply(self.value, xs, carry, **kwargs)
        return apply_batched(layer, self.value, xs, carry, **kwargs)


class LinenCell(linen.Module):
    """A jaxrnn :class:`~jaxrnn.Cell` as a ``flax.linen`` module.

    ``variables = m.init(key, carry, x)``; the params pytree is
    ``variables["params"]["cell"]`` (drawn by ``cell.init``). ``m.apply(variables,
    carry, x)`` is ``vmap(cell.step)`` over the leading axes of ``x (*batch, I)``;
    ``m.apply(variables, input_shape, method="initialize_carry")`` broadcasts
    ``cell.initial_carry(params)`` to ``input_shape[:-1]``.
    """

    cell: Cell

    def setup(self) -> None:
        self.cell_params = self.param("cell", lambda key: self.cell.init(key))

    def initialize_carry(self, input_shape: tuple[int, ...]) -> Carry:
        return _broadcast(self.cell.initial_carry(self.cell_params), tuple(input_shape[:-1]))

    def __call__(self, carry: Carry, x: Array) -> tuple[Carry, Array]:
        _check_input("x", x, self.cell.input_size, 1, "(*batch, input_size)")
        return batched_step(self.cell, self.cell_params, carry, x)


# ------------------------------------------------------------------------ conversion

_SIGMOID = (jax.nn.sigmoid,)
_TANH = (jnp.tanh,)


def _check_fns(module, what: str, simple: bool = False) -> str | None:
    """Check the cell's nonlinearities; return the Elman nonlinearity for SimpleCell."""
    act = module.activation_fn
    if simple:
        if act in _TANH:
            return "tanh"
        if act is jax.nn.relu:
            return "relu"
        raise ValueError(
            f"{what}.activation_fn must be tanh or relu (jaxrnn.rnn's nonlinearities), got {act}"
        )
    if module.gate_fn not in _SIGMOID:
        raise ValueError(
            f"{what}.gate_fn must be jax.nn.sigmoid (jaxrnn's gates), got {module.gate_fn}"
        )
    if act not in _TANH:
        raise ValueError(
            f"{what}.activation_fn must be tanh (jaxrnn's candidate and output), got {act}"
        )
    return None


def _kind(module) -> tuple[str, str]:
    """``(framework, kind)``: framework ``"linen"``/``"nnx"``, kind ``"lstm"`` (both
    LSTM cells), ``"optlstm_nnx"``, ``"gru"`` or ``"simple"``."""
    if isinstance(module, linen.Module):
        table = [
            (linen.OptimizedLSTMCell, "lstm"),
            (linen.LSTMCell, "lstm"),
            (linen.GRUCell, "gru"),
            (linen.SimpleCell, "simple"),
        ]
        fw = "linen"
    elif isinstance(module, nnx.Module):
        table = [
            (nnx.OptimizedLSTMCell, "optlstm"),
            (nnx.LSTMCell, "lstm"),
            (nnx.GRUCell, "gru"),
            (nnx.SimpleCell, "simple"),
        ]
        fw = "nnx"
    else:
        table, fw = [], ""
    for cls, kind in table:
        if type(module) is cls:
            return fw, kind
    raise ValueError(
        "module must be a flax.linen or flax.nnx LSTMCell, OptimizedLSTMCell, GRUCell or "
        f"SimpleCell, got {type(module).__module__}.{type(module).__name__}"
    )


_LSTM_GATES = ("i", "f", "g", "o")
_GRU_GATES = ("r", "z", "n")


def _nnx_get(linear, name: str):
    return None if getattr(linear, name, None) is None else jnp.asarray(getattr(linear, name)[...])


def _read(module, fw: str, kind: str, variables) -> dict[str, Array]:
    """Flax's arrays in a canonical form: ``Ki (I, G*H)``, ``Kh (H, G*H)``, ``bi``,
    ``bh`` (``(G*H,)`` or ``None``) and, for the GRU, ``bhn (H,)`` or ``None``."""
    if fw == "linen":
        if variables is None:
            raise ValueError("variables (the linen module's {'params': ...}) must be given")
        p = variables.get("params", variables) if isinstance(variables, Mapping) else None
        if not isinstance(p, Mapping):
            raise ValueError("variables must be a dict {'params': {...}} of the linen module")
        cat = lambda names, f: jnp.concatenate([jnp.asarray(p[n][f]) for n in names], axis=-1)  # noqa: E731
        try:
            if kind == "lstm":
                return dict(
                    Ki=cat([f"i{g}" for g in _LSTM_GATES], "kernel"),
                    Kh=cat([f"h{g}" for g in _LSTM_GATES], "kernel"),
                    bi=None,
                    bh=cat([f"h{g}" for g in _LSTM_GATES], "bias"),
                )
            if kind == "gru":
                return dict(
                    Ki=cat([f"i{g}" for g in _GRU_GATES], "kernel"),
                    Kh=cat([f"h{g}" for g in _GRU_GATES], "kernel"),
                    bi=cat([f"i{g}" for g in _GRU_GATES], "bias"),
                    bh=None,
                    bhn=jnp.asarray(p["hn"]["bias"]),
                )
            return dict(Ki=p["i"]["kernel"], Kh=p["h"]["kernel"], bi=p["i"]["bias"], bh=None)
        except KeyError as e:
            raise ValueError(
                f"variables lack the parameter {e} of a {type(module).__name__}"
            ) from None
    if kind == "lstm":
        return dict(
            Ki=jnp.concatenate([module.ii.kernel[...], module.if_.kernel[...],
                                module.ig.kernel[...], module.io.kernel[...]], axis=-1),
            Kh=jnp.concatenate([module.hi.kernel[...], module.hf.kernel[...],
                                module.hg.kernel[...], module.ho.kernel[...]], axis=-1),
            bi=None,
            bh=jnp.concatenate([module.hi.bias[...], module.hf.bias[...],
                                module.hg.bias[...], module.ho.bias[...]], axis=-1),
        )  # fmt: skip
    out = dict(
        Ki=module.dense_i.kernel[...],
        Kh=module.dense_h.kernel[...],
        bi=_nnx_get(module.dense_i, "bias"),
        bh=_nnx_get(module.dense_h, "bias"),
    )
    if kind == "gru":
        out["bhn"] = None
    return out


def from_flax(module, variables: Mapping | None = None) -> tuple[Cell, Params]:
    """A Flax recurrent cell as ``(jaxrnn cell, params)`` computing the same function.

    Args:
      module: a ``flax.linen`` or ``flax.nnx`` ``LSTMCell``, ``OptimizedLSTMCell``,
        ``GRUCell`` or ``SimpleCell`` (nnx modules hold their params).
      variables: for a linen module, its variables ``{"params": {...}}`` (or the inner
        ``params`` dict); ignored for nnx.

    Returns:
      ``(cell, params)``: :func:`jaxrnn.lstm`, :func:`jaxrnn.gru` or :func:`jaxrnn.rnn`
      with the params' dtype (the module's ``param_dtype``) and the mapping of the module
      docstring; every conversion in this direction is exact. Carries convert with
      :func:`carry_from_flax`. The jaxrnn cell computes in the params' dtype; a Flax
      module built with another computation ``dtype`` rounds differently.

    Raises:
      ValueError: another module, or a ``gate_fn``/``activation_fn`` jaxrnn does not
        compute (naming it).
    """
    fw, kind = _kind(module)
    what = f"{fw}.{type(module).__name__}"
    nonlin = _check_fns(module, what, simple=kind == "simple")
    a = _read(module, fw, kind, variables)
    Ki, Kh = jnp.asarray(a["Ki"]), jnp.asarray(a["Kh"])
    dt = Ki.dtype
    I, H = Ki.shape[0], Kh.shape[0]
    if kind in ("lstm", "optlstm"):
        params = LSTMParams(Ki.T, Kh.T, jnp.zeros((4 * H,), dt), jnp.asarray(a["bh"]), None)
        return lstm(I, H, dtype=dt), params
    if kind == "gru":
        zeros = jnp.zeros((H,), dt)
        bhn = zeros if a["bhn"] is None else jnp.asarray(a["bhn"])
        b_hh = jnp.concatenate([zeros, zeros, bhn])
        return gru(I, H, dtype=dt), GRUParams(Ki.T, Kh.T, jnp.asarray(a["bi"]), b_hh)
    w_hh = Kh.T + (jnp.eye(H, dtype=dt) if module.residual else 0)
    params = RNNParams(Ki.T, w_hh, jnp.asarray(a["bi"]), jnp.zeros((H,), dt))
    return rnn(I, H, nonlinearity=nonlin, dtype=dt), params


def _bias_sum(b_ih, b_hh, n: int, dt) -> Array:
    out = jnp.zeros((n,), dt)
    for b in (b_ih, b_hh):
        if b is not None:
            out = out + b
    return out


_GATES = {"lstm": (LSTMParams, 4), "optlstm": (LSTMParams, 4), "gru": (GRUParams, 3)}


def _check_params(params: Params, kind: str) -> tuple[int, int]:
    """Check the params type for the Flax cell kind; return ``(I, H)``."""
    want, gates = _GATES.get(kind, (RNNParams, 1))
    if not isinstance(params, want):
        raise ValueError(
            f"params must be {want.__name__} for this Flax cell, got {type(params).__name__}"
        )
    if isinstance(params, LSTMParams) and params.w_hr is not None:
        raise ValueError(
            "params.w_hr must be None: Flax's LSTM cells have no projection (LSTMP), "
            "so a jaxrnn.lstm with proj_size > 0 has no Flax equivalent"
        )
    return params.w_ih.shape[1], params.w_ih.shape[0] // gates


def _canonical(params: Params, kind: str, fw: str) -> dict[str, Array]:
    """jaxrnn params -> the canonical Flax arrays of :func:`_read` (refusing what the
    Flax cell cannot represent)."""
    dt = params.w_ih.dtype
    G_H, _ = params.w_ih.shape
    if kind in ("lstm", "optlstm"):
        return dict(
            Ki=params.w_ih.T,
            Kh=params.w_hh.T,
            bi=None,
            bh=_bias_sum(params.b_ih, params.b_hh, G_H, dt),
        )
    if kind == "gru":
        H = G_H // 3
        b_hh = jnp.zeros((3 * H,), dt) if params.b_hh is None else params.b_hh
        bhn = b_hh[2 * H :]
        if fw == "nnx" and np.any(np.asarray(bhn) != 0):
            raise ValueError(
                "flax.nnx.GRUCell cannot represent this GRU: it computes "
                "n = tanh(W_in x + b_in + r * (W_hn h)) with no bias inside the reset "
                "product, and params.b_hh[2H:3H] (b_hn) is nonzero; convert to "
                "flax.linen.GRUCell (which has b_hn) or train with b_hn = 0"
            )
        b_rz = jnp.concatenate([b_hh[: 2 * H], jnp.zeros((H,), dt)])
        return dict(
            Ki=params.w_ih.T,
            Kh=params.w_hh.T,
            bi=_bias_sum(params.b_ih, b_rz, 3 * H, dt),
            bh=None,
            bhn=bhn,
        )
    H = G_H
    return dict(Ki=params.w_ih.T, Kh=params.w_hh.T, bi=_bias_sum(params.b_ih, params.b_hh, H, dt))


def _set(var, value: Array, name: str) -> None:
    if tuple(var[...].shape) != tuple(value.shape):
        raise ValueError(
            f"{name} must have shape {tuple(value.shape)}, got {tuple(var[...].shape)}"
        )
    var[...] = value.astype(var[...].dtype)


def to_flax(params: Params, module):
    """Write jaxrnn params into a Flax cell (the inverse of :func:`from_flax`).

    Args:
      params: ``LSTMParams`` (no projection), ``GRUParams`` or ``RNNParams``.
      module: the target Flax cell, configured (``linen.LSTMCell(features=H)``,
        ``nnx.GRUCell(I, H, rngs=...)``, ...). Its ``gate_fn``/``activation_fn`` must be
        jaxrnn's (checked); a ``SimpleCell``'s ``activation_fn`` must be the
        nonlinearity the jaxrnn ``rnn`` cell was built with (params do not record it).

    Returns:
      linen: the variables ``{"params": {...}}`` for ``module.apply``. nnx: ``module``,
      with its params overwritten in place (shapes must match; they keep the module's
      ``param_dtype``).

    Raises:
      ValueError: a conversion that is not exact (an LSTM projection; a nonzero
        ``b_hn`` into ``nnx.GRUCell``), wrong params type, shape or nonlinearity.
    """
    fw, kind = _kind(module)
    what = f"{fw}.{type(module).__name__}"
    _check_fns(module, what, simple=kind == "simple")
    size_in, H = _check_params(params, kind)
    if fw == "linen" and module.features != H:
        raise ValueError(
            f"{what}.features must be {H} (the params' hidden size), got {module.features}"
        )
    if fw == "nnx" and (module.hidden_features != H or module.in_features != size_in):
        raise ValueError(
            f"{what} must have in_features={size_in} and hidden_features={H} "
            f"(the params' sizes), got {module.in_features} and {module.hidden_features}"
        )
    a = _canonical(params, kind, fw)
    if fw == "linen":
        split = lambda k: jnp.split(k, k.shape[-1] // H, axis=-1)  # noqa: E731
        if kind == "lstm":
            ki, kh, bh = split(a["Ki"]), split(a["Kh"]), split(a["bh"])
            p = {}
            for j, g in enumerate(_LSTM_GATES):
                p[f"i{g}"] = {"kernel": ki[j]}
                p[f"h{g}"] = {"kernel": kh[j], "bias": bh[j]}
            return {"params": p}
        if kind == "gru":
            ki, kh, bi = split(a["Ki"]), split(a["Kh"]), split(a["bi"])
            p = {}
            for j, g in enumerate(_GRU_GATES):
                p[f"i{g}"] = {"kernel": ki[j], "bias": bi[j]}
                p[f"h{g}"] = {"kernel": kh[j]}
            p["hn"]["bias"] = a["bhn"]
            return {"params": p}
        Kh = a["Kh"] - (jnp.eye(H, dtype=a["Kh"].dtype) if module.residual else 0)
        return {"params": {"i": {"kernel": a["Ki"], "bias": a["bi"]}, "h": {"kernel": Kh}}}
    if kind == "lstm":
        ki, kh = jnp.split(a["Ki"], 4, axis=-1), jnp.split(a["Kh"], 4, axis=-1)
        bh = jnp.split(a["bh"], 4)
        for j, g in enumerate(("ii", "if_", "ig", "io")):
            _set(getattr(module, g).kernel, ki[j], f"{what}.{g}.kernel")
        for j, g in enumerate(("hi", "hf", "hg", "ho")):
            _set(getattr(module, g).kernel, kh[j], f"{what}.{g}.kernel")
            _set(getattr(module, g).bias, bh[j], f"{what}.{g}.bias")
        return module
    Kh = a["Kh"]
    if kind == "simple" and module.residual:
        Kh = Kh - jnp.eye(H, dtype=Kh.dtype)
    _set(module.dense_i.kernel, a["Ki"], f"{what}.dense_i.kernel")
    _set(module.dense_h.kernel, Kh, f"{what}.dense_h.kernel")
    if a.get("bi") is not None:
        _set(module.dense_i.bias, a["bi"], f"{what}.dense_i.bias")
    if a.get("bh") is not None:
        _set(module.dense_h.bias, a["bh"], f"{what}.dense_h.bias")
    return module


def carry_from_flax(carry: Any) -> Carry:
    """A Flax carry as jaxrnn's: LSTM ``(c, h)`` -> ``LSTMCarry(h, c)``; an array (GRU,
    SimpleCell) is returned as it is."""
    if isinstance(carry, tuple) and not isinstance(carry, LSTMCarry):
        if len(carry) != 2:
            raise ValueError(f"a Flax LSTM carry is a pair (c, h), got {len(carry)} entries")
        c, h = carry
        return LSTMCarry(h, c)
    return carry


def carry_to_flax(carry: Carry) -> Any:
    """jaxrnn's carry as Flax's: ``LSTMCarry(h, c)`` -> ``(c, h)``; arrays unchanged."""
    if isinstance(carry, LSTMCarry):
        return (carry.c, carry.h)
    return carry
