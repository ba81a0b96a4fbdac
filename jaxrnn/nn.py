r"""PyTorch-shaped recurrent layers: :class:`RNN`, :class:`GRU`, :class:`LSTM`.

These mirror ``torch.nn.RNN``, ``torch.nn.GRU`` and ``torch.nn.LSTM``: the same
constructor arguments, the same input and state shapes, the same return values and the
same parameter layout, so code and weights move between the two without reshuffling
(see :mod:`jaxrnn.interop.torch`). They are thin: each object holds its static
configuration and a :class:`~jaxrnn.Layer` built from :mod:`jaxrnn.sequence`
(``stack`` of ``bidirectional`` / one-direction ``recurrent`` layers of the built-in
cells), batched by ``jax.vmap`` through :func:`jaxrnn.sequence.apply_batched`, run by the
engine (:mod:`jaxrnn.engine`; the fused path of the built-in cells). ``apply`` is
compiled once per layer object, so eager calls do not re-trace.

Example::

    lstm = jaxrnn.nn.LSTM(10, 20, num_layers=2, bidirectional=True)
    params = lstm.init(jax.random.key(0))
    x = jnp.ones((7, 3, 10))                       # (T, B, I)
    output, (h_n, c_n) = jax.jit(lstm.apply)(params, x)
    # output (7, 3, 40), h_n (4, 3, 20), c_n (4, 3, 20)

Shapes (``D = 2`` if ``bidirectional`` else ``1``; ``H_out = proj_size`` if
``proj_size > 0`` else ``hidden_size``; ``L = num_layers``):

==========  =====================================  =================================
argument    batched                                unbatched
==========  =====================================  =================================
``x``       ``(T, B, I)``, ``(B, T, I)`` if         ``(T, I)``
            ``batch_first``
``h_0``     ``(L*D, B, H_out)``                    ``(L*D, H_out)``
``c_0``     ``(L*D, B, hidden_size)`` (LSTM)       ``(L*D, hidden_size)``
``output``  ``(T, B, D*H_out)`` or batch first     ``(T, D*H_out)``
``h_n``     like ``h_0``                           like ``h_0``
``c_n``     like ``c_0``                           like ``c_0``
==========  =====================================  =================================

``batch_first`` only affects ``x`` and ``output``, never the states (as in PyTorch).

Parameters are a tuple over layers of a tuple over directions (``(forward,)`` or
``(forward, backward)``) of the cell's params NamedTuple, so ``params[k][d]`` holds
PyTorch's ``weight_ih_l{k}{sfx}``, ``weight_hh_l{k}{sfx}``, ``bias_ih_l{k}{sfx}``,
``bias_hh_l{k}{sfx}`` and (LSTM with projections) ``weight_hr_l{k}{sfx}`` as the fields
``w_ih, w_hh, b_ih, b_hh, w_hr``, with ``sfx = "_reverse"`` for ``d = 1``. Row ``k*D + d``
of ``h_0``/``h_n``/``c_0``/``c_n`` belongs to ``params[k][d]``.

Variable lengths: ``lengths (B,)`` gives the numbers of
``pad_packed_sequence(rnn(pack_padded_sequence(x, lengths, enforce_sorted=False), hx),
total_length=T)``: outputs at ``t >= lengths[b]`` are zero, the forward ``h_n``/``c_n``
are the states after step ``lengths[b] - 1`` and the reverse ones after reading
``t = 0`` (the reverse direction starts at ``lengths[b] - 1``). The output keeps ``T``
steps (PyTorch without ``total_length`` trims to ``max(lengths)``), so nothing is
recompiled per length.

Dropout (Srivastava et al. 2014; placed between stacked layers as in Zaremba et al.
2014 and PyTorch): with ``dropout > 0`` and a ``key`` passed to ``apply``, every output
of layers ``0 .. L-2`` is zeroed with probability ``dropout`` and the survivors scaled
by ``1/(1 - dropout)`` (PyTorch's training mode); without a key nothing is dropped
(evaluation mode).

The cells' equations (gate orders LSTM ``i, f, g, o``, GRU ``r, z, n`` with the reset
applied to ``W_hn h + b_hn``) are in :func:`jaxrnn.rnn`, :func:`jaxrnn.gru` and
:func:`jaxrnn.lstm`.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn.base import Array, Carry, Cell, Layer, Params, PRNGKey, configured
from jaxrnn.cells import LSTMCarry, gru, lstm, rnn
from jaxrnn.checks import (
    check_bool,
    check_float_dtype,
    check_nonneg_int,
    check_positive_int,
    shape_str,
)
from jaxrnn.engine import _as_array, check_length_values, unchecked
from jaxrnn.sequence import apply_batched, bidirectional, check_dropout, recurrent, stack

__all__ = ["GRU", "LSTM", "RNN"]


@configured("one_direction")
def _one_direction(cell: Cell) -> Layer:
    """``recurrent(cell)`` with params and carry wrapped in 1-tuples ``(forward,)``.

    So that every layer of a :mod:`jaxrnn.nn` stack has params ``(forward,)`` or
    ``(forward, backward)``, whatever ``bidirectional`` is.
    """
    inner = recurrent(cell)

    def init(key):
        return (inner.init(key),)

    def initial_carry(params):
        return (inner.initial_carry(params[0]),)

    def apply(params, xs, carry=None, *, length=None, mask=None, reset=None, key=None):
        c0 = None if carry is None else carry[0]
        c, ys = inner.apply(params[0], xs, c0, length=length, mask=mask, reset=reset)
        return (c,), ys

    return Layer(init, initial_carry, apply, inner.input_size, inner.output_size)


_shape_str = shape_str


@dataclasses.dataclass(frozen=True)
class _RNNBase:
    """Shared machinery of :class:`RNN`, :class:`GRU` and :class:`LSTM` (not public)."""

    # What differs between the classes is data, not branches: the names of the parts of
    # hx (``("h_0",)``; LSTM ``("h_0", "c_0")``), whether proj_size may be positive, and
    # how the parts make a cell's carry (_join) and back (_split).
    _hx_names: ClassVar[tuple[str, ...]] = ("h_0",)
    _projections: ClassVar[bool] = False

    @staticmethod
    def _join(parts: tuple) -> Carry:
        return parts[0]

    @staticmethod
    def _split(carry: Carry) -> tuple:
        return (carry,)

    def _hx_widths(self) -> tuple[int, ...]:
        return (self.output_size,)

    def __post_init__(self) -> None:
        # Normalise NumPy scalars to Python ones (hashable, accepted by the cell factories).
        for name in ("input_size", "hidden_size", "num_layers"):
            object.__setattr__(self, name, check_positive_int(name, getattr(self, name)))
        object.__setattr__(self, "proj_size", check_nonneg_int("proj_size", self.proj_size))
        for name in ("bias", "batch_first", "bidirectional"):
            object.__setattr__(self, name, check_bool(name, getattr(self, name)))
        object.__setattr__(self, "dropout", check_dropout(self.dropout))
        p = self.proj_size
        if p and not self._projections:
            raise ValueError(
                f"proj_size is only supported for LSTM, not {type(self).__name__}; "
                f"got proj_size={p}"
            )
        if p >= self.hidden_size:
            raise ValueError(
                f"proj_size must be smaller than hidden_size ({self.hidden_size}), got {p}"
            )
        object.__setattr__(self, "dtype", check_float_dtype("dtype", self.dtype))
        if self.dropout > 0 and self.num_layers == 1:
            warnings.warn(
                "dropout only acts between stacked layers, so it has no effect with "
                f"num_layers=1 (got dropout={self.dropout})",
                stacklevel=3,
            )
        cells = []
        for k in range(self.num_layers):
            in_size = self.input_size if k == 0 else self.num_directions * self.output_size
            cells.append(tuple(self._make_cell(in_size) for _ in range(self.num_directions)))
        cells = tuple(cells)
        layers = [
            bidirectional(c[0], c[1]) if self.bidirectional else _one_direction(c[0]) for c in cells
        ]
        object.__setattr__(self, "_cells", cells)
        object.__setattr__(self, "_layer", stack(*layers, dropout=self.dropout))
        # Compiled once per layer object, so eager calls do not re-trace every time.
        object.__setattr__(self, "_run", jax.jit(self._forward))
        # Abstract params, for validating what apply() is given (no arrays allocated).
        object.__setattr__(
            self, "_param_shapes", jax.eval_shape(self._layer.init, jax.random.key(0))
        )

    def __reduce__(self):
        # The compiled function and cells are rebuilt from the configuration.
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}
        return _rebuild, (type(self), fields)

    # ---------------------------------------------------------------- configuration

    def _make_cell(self, in_size: int) -> Cell:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def num_directions(self) -> int:
        """``D``: 2 if bidirectional else 1."""
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        """``H_out``: ``proj_size`` if it is positive, else ``hidden_size``."""
        return self.proj_size or self.hidden_size

    @property
    def cells(self) -> tuple[tuple[Cell, ...], ...]:
        """The :class:`~jaxrnn.Cell` of each layer and direction: ``cells[k][d]``."""
        return self._cells

    @property
    def layer(self) -> Layer:
        """The underlying :class:`~jaxrnn.Layer` (one example, ``xs (T, I)``).

        Its params are exactly this object's params; its carry is a tuple over layers
        of a tuple over directions of cell carries.
        """
        return self._layer

    # ------------------------------------------------------------------- init / apply

    def init(self, key: PRNGKey) -> Params:
        """Draw params with PyTorch's default ``U(-1/sqrt(H), 1/sqrt(H))`` for every tensor.

        Returns a tuple over layers of a tuple over directions of the cell's params
        NamedTuple (see the module docstring for the mapping to PyTorch names).
        """
        return self._layer.init(key)

    def initial_state(self, batch_size: int | None = None) -> Any:
        """Zero ``hx`` as PyTorch uses when it is not given: ``h_0`` (and ``(h_0, c_0)``).

        ``batch_size=None`` gives the unbatched shapes ``(L*D, H_out)``.
        """
        b = () if batch_size is None else (batch_size,)
        n = self.num_layers * self.num_directions
        parts = tuple(jnp.zeros((n, *b, w), self.dtype) for w in self._hx_widths())
        return parts[0] if len(parts) == 1 else parts

    def _check_params(self, params: Params) -> None:
        want = jax.tree_util.tree_structure(self._param_shapes)
        got = jax.tree_util.tree_structure(params)
        if want != got:
            raise ValueError(
                f"params must be a tuple over {self.num_layers} layers of a tuple over "
                f"{self.num_directions} directions of cell params; expected structure "
                f"{want}, got {got}"
            )
        paths = jax.tree_util.tree_leaves_with_path(self._param_shapes)
        for (path, w), a in zip(paths, jax.tree_util.tree_leaves(params)):
            if jnp.shape(a) != w.shape:
                raise ValueError(
                    f"params{jax.tree_util.keystr(path)} must have shape "
                    f"{_shape_str(w.shape)}, got {_shape_str(jnp.shape(a))}"
                )

    def _check_x(self, x) -> tuple[int, int | None]:
        """Validate ``x``; return ``(T, B)`` with ``B = None`` for unbatched input."""
        I = self.input_size
        lead = "(B, T, " if self.batch_first else "(T, B, "
        expect = f"{lead}{I}) or (T, {I})"
        shape = getattr(x, "shape", None)
        dtype = getattr(x, "dtype", None)
        if shape is None or dtype is None:
            raise ValueError(f"x must be an array of shape {expect}, got {type(x).__name__}")
        if not jnp.issubdtype(dtype, jnp.floating):
            raise ValueError(f"x must have a floating dtype, got {dtype}")
        if len(shape) not in (2, 3):
            raise ValueError(
                f"x must be 3-D {lead}{I}) or 2-D (T, {I}), got {len(shape)}-D "
                f"shape {_shape_str(shape)}"
            )
        if shape[-1] != I:
            raise ValueError(
                f"x must have shape {expect} (input_size={I}), got {_shape_str(shape)}"
            )
        if len(shape) == 2:
            T, B = shape[0], None
        else:
            T, B = (shape[1], shape[0]) if self.batch_first else (shape[0], shape[1])
        if T < 1:
            raise ValueError(f"x must have at least one time step, got {_shape_str(shape)}")
        return T, B  # B = 0 is an empty batch: empty outputs, as in torch

    def _check_state(self, name: str, a, width: int, B: int | None, dtype) -> None:
        n = self.num_layers * self.num_directions
        want = (n, width) if B is None else (n, B, width)
        shape = getattr(a, "shape", None)
        if shape is None or getattr(a, "dtype", None) is None:
            raise ValueError(f"{name} must be an array of shape {_shape_str(want)}, got {a!r}")
        if tuple(shape) != want:
            layout = "(num_layers*D, H)" if B is None else "(num_layers*D, B, H)"
            raise ValueError(
                f"{name} must have shape {_shape_str(want)} = {layout}, got {_shape_str(shape)}"
            )
        if a.dtype != dtype:
            raise ValueError(f"{name} must have dtype {dtype} (that of params), got {a.dtype}")

    def _hx_to_carry(self, hx, B: int | None, dtype) -> Carry:
        """``h_0`` (and ``c_0``) in PyTorch layout -> nested carry ``[k][d]``."""
        names = self._hx_names
        if len(names) == 1:
            parts = (hx,)
        elif isinstance(hx, (tuple, list)) and len(hx) == len(names):
            parts = tuple(hx)
        else:
            raise ValueError(
                f"hx must be a tuple ({', '.join(names)}) for {type(self).__name__}, "
                f"got {type(hx).__name__}"
            )
        for name, a, width in zip(names, parts, self._hx_widths()):
            self._check_state(name, a, width, B, dtype)
        D = self.num_directions
        return tuple(
            tuple(self._join(tuple(a[k * D + d] for a in parts)) for d in range(D))
            for k in range(self.num_layers)
        )

    def _carry_to_hx(self, carry: Carry):
        """Nested carry ``[k][d]`` -> ``h_n`` (and ``(h_n, c_n)``) in PyTorch layout."""
        flat = [self._split(c) for layer in carry for c in layer]
        parts = tuple(jnp.stack(p) for p in zip(*flat))
        return parts[0] if len(parts) == 1 else parts

    def _check_lengths(self, lengths, T: int, B: int | None):
        lengths = _as_array(lengths, "lengths")
        if not hasattr(lengths, "shape"):
            lengths = np.asarray(lengths)
        want = () if B is None else (B,)
        if tuple(lengths.shape) != want:
            what = "a scalar for unbatched x" if B is None else f"shape ({B},) (one per sequence)"
            raise ValueError(f"lengths must have {what}, got shape {_shape_str(lengths.shape)}")
        if not jnp.issubdtype(lengths.dtype, jnp.integer):
            raise ValueError(f"lengths must have an integer dtype, got {lengths.dtype}")
        return jnp.asarray(check_length_values(lengths, T, "lengths"))

    def apply(
        self,
        params: Params,
        x: Array,
        hx: Any = None,
        *,
        lengths: Array | None = None,
        key: PRNGKey | None = None,
    ):
        """Run the layer like ``torch.nn.{RNN,GRU,LSTM}.forward``.

        Args:
          params: from :meth:`init` or :func:`jaxrnn.from_torch`.
          x: ``(T, B, I)`` (``(B, T, I)`` if ``batch_first``) or unbatched ``(T, I)``.
          hx: ``h_0`` (RNN, GRU) or ``(h_0, c_0)`` (LSTM), shapes as in the module
            docstring; ``None`` means zeros.
          lengths: optional integer ``(B,)`` (a scalar for unbatched ``x``) in ``[1, T]``:
            the valid length of each sequence, like ``pack_padded_sequence(...,
            enforce_sorted=False)``; padded outputs are zero.
          key: PRNG key enabling inter-layer dropout (training mode); ``None``: none.

        Returns:
          ``(output, h_n)`` for RNN and GRU, ``(output, (h_n, c_n))`` for LSTM.

        Raises:
          ValueError: on a bad shape or dtype of ``x``, ``hx``, ``lengths`` or ``params``
            (in Python, on static shapes, before any tracing).
        """
        T, B = self._check_x(x)
        self._check_params(params)
        dtype = jax.tree_util.tree_leaves(params)[0].dtype
        if x.dtype != dtype:
            raise ValueError(f"x must have dtype {dtype} (that of params), got {x.dtype}")
        carry = None if hx is None else self._hx_to_carry(hx, B, dtype)
        if lengths is not None:
            lengths = self._check_lengths(lengths, T, B)
        with unchecked():  # the compiled function is the same in and out of checked()
            return self._run(params, x, carry, lengths, key)

    __call__ = apply

    def _forward(self, params, x, carry, lengths, key):
        if x.ndim == 2:
            carry, ys = self._layer.apply(params, x, carry, length=lengths, key=key)
        else:
            xs = x if self.batch_first else jnp.swapaxes(x, 0, 1)
            carry, ys = apply_batched(self._layer, params, xs, carry, length=lengths, key=key)
            if not self.batch_first:
                ys = jnp.swapaxes(ys, 0, 1)
        return ys, self._carry_to_hx(carry)


@dataclasses.dataclass(frozen=True)
class RNN(_RNNBase):
    r"""Multi-layer Elman RNN with the interface of ``torch.nn.RNN``.

    Per layer and direction (:func:`jaxrnn.rnn`, Elman 1990):
    ``h_t = phi(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)`` with ``phi = tanh`` or ``relu``;
    the input of layer ``k > 0`` is the (dropped-out) output of layer ``k - 1``.

    Args (positional order as in PyTorch):
      input_size: ``I``. hidden_size: ``H``.
      num_layers: number of stacked layers (``>= 1``).
      nonlinearity: ``"tanh"`` or ``"relu"``.
      bias: if ``False``, no ``b_ih``/``b_hh`` (they are ``None`` in params).
      batch_first: ``x`` and ``output`` are ``(B, T, ...)``.
      dropout: inter-layer dropout probability in ``[0, 1)``.
      bidirectional: add a reverse direction (Schuster & Paliwal 1997).
      proj_size: must be 0 (PyTorch accepts the argument and rejects nonzero values).
      dtype: parameter dtype.

    ``apply(params, x, h_0=None, *, lengths=None, key=None) -> (output, h_n)``; see the
    module docstring for shapes.
    """

    input_size: int
    hidden_size: int
    num_layers: int = 1
    nonlinearity: str = "tanh"
    bias: bool = True
    batch_first: bool = False
    dropout: float = 0.0
    bidirectional: bool = False
    proj_size: int = 0
    dtype: Any = jnp.float32
    _cells: Any = dataclasses.field(init=False, repr=False, compare=False, default=None)
    _layer: Any = dataclasses.field(init=False, repr=False, compare=False, default=None)
    _param_shapes: Any = dataclasses.field(init=False, repr=False, compare=False, default=None)
    _run: Any = dataclasses.field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        if self.nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {self.nonlinearity!r}")
        super().__post_init__()

    def _make_cell(self, in_size: int) -> Cell:
        return rnn(
            in_size,
            self.hidden_size,
            nonlinearity=self.nonlinearity,
            bias=self.bias,
            dtype=self.dtype,
        )


@dataclasses.dataclass(frozen=True)
class _GatedBase(_RNNBase):
    """The fields of :class:`GRU` and :class:`LSTM`, in ``torch.nn.GRU/LSTM`` order."""

    input_size: int
    hidden_size: int
    num_layers: int = 1
    bias: bool = True
    batch_first: bool = False
    dropout: float = 0.0
    bidirectional: bool = False
    proj_size: int = 0
    dtype: Any = jnp.float32
    _cells: Any = dataclasses.field(init=False, repr=False, compare=False, default=None)
    _layer: Any = dataclasses.field(init=False, repr=False, compare=False, default=None)
    _param_shapes: Any = dataclasses.field(init=False, repr=False, compare=False, default=None)
    _run: Any = dataclasses.field(init=False, repr=False, compare=False, default=None)


@dataclasses.dataclass(frozen=True)
class GRU(_GatedBase):
    r"""Multi-layer GRU with the interface of ``torch.nn.GRU``.

    Per layer and direction (:func:`jaxrnn.gru`, Cho et al. 2014, gate order ``r, z, n``)::

        r = sigma(W_ir x + b_ir + W_hr h + b_hr)
        z = sigma(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
        h' = (1 - z) * n + z * h

    Args (positional order as in PyTorch): ``input_size, hidden_size, num_layers=1,
    bias=True, batch_first=False, dropout=0.0, bidirectional=False``; keyword
    ``proj_size`` (must be 0) and ``dtype``. See :class:`RNN` for their meaning.

    ``apply(params, x, h_0=None, *, lengths=None, key=None) -> (output, h_n)``.
    """

    def _make_cell(self, in_size: int) -> Cell:
        return gru(in_size, self.hidden_size, bias=self.bias, dtype=self.dtype)


@dataclasses.dataclass(frozen=True)
class LSTM(_GatedBase):
    r"""Multi-layer LSTM (optionally with projections) with the interface of ``torch.nn.LSTM``.

    Per layer and direction (:func:`jaxrnn.lstm`; Hochreiter & Schmidhuber 1997, forget
    gate Gers et al. 2000, projection Sak et al. 2014; gate order ``i, f, g, o``)::

        i = sigma(W_ii x + b_ii + W_hi h + b_hi)
        f = sigma(W_if x + b_if + W_hf h + b_hf)
        g = tanh(W_ig x + b_ig + W_hg h + b_hg)
        o = sigma(W_io x + b_io + W_ho h + b_ho)
        c' = f * c + i * g
        h' = o * tanh(c')            (proj_size > 0: h' = W_hr (o * tanh(c')))

    Args (positional order as in PyTorch): ``input_size, hidden_size, num_layers=1,
    bias=True, batch_first=False, dropout=0.0, bidirectional=False, proj_size=0``;
    keyword ``dtype``. ``proj_size = P`` must satisfy ``0 <= P < hidden_size``.

    ``apply(params, x, (h_0, c_0)=None, *, lengths=None, key=None)
    -> (output, (h_n, c_n))``; ``h`` has width ``P`` (if ``P > 0``) and ``c`` width ``H``.
    """

    _hx_names: ClassVar[tuple[str, ...]] = ("h_0", "c_0")
    _projections: ClassVar[bool] = True
    _join = staticmethod(lambda parts: LSTMCarry(*parts))
    _split = staticmethod(lambda carry: (carry.h, carry.c))

    def _hx_widths(self) -> tuple[int, ...]:
        return (self.output_size, self.hidden_size)

    def _make_cell(self, in_size: int) -> Cell:
        return lstm(
            in_size, self.hidden_size, proj_size=self.proj_size, bias=self.bias, dtype=self.dtype
        )


def _rebuild(cls, fields: dict):
    return cls(**fields)
