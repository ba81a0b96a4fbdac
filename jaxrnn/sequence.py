"""Sequence layers: a cell lifted over time by the engine, for one example.

Everything here works on one example, ``xs (T, input_size)``; batch with ``jax.vmap``
(or :func:`apply_batched` for any number of leading batch dimensions).

- :func:`scan` (from :mod:`jaxrnn.engine`): the primitive. Runs a cell over ``xs`` with
  an optional valid prefix ``length`` or ``mask`` (the carry freezes on invalid steps,
  their outputs are zero), ``reverse`` (reverses only the valid prefix, so padding stays
  at the end) and per-step ``reset`` flags (episode boundaries).
- :func:`recurrent`, :func:`bidirectional`, :func:`stack`: build :class:`~jaxrnn.Layer`
  values from cells, pair directions, and stack layers with dropout in between.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn.base import Array, Carry, Cell, Layer, Params, PRNGKey, configured
from jaxrnn.checks import check_probability
from jaxrnn.engine import (
    _as_array,
    check_carry,
    check_inputs,
    check_length_values,
    scan,
    scan_pair,
)

__all__ = [
    "apply_batched",
    "bidirectional",
    "check_carry",
    "check_dropout",
    "check_inputs",
    "pad_sequences",
    "recurrent",
    "scan",
    "stack",
]


# ----------------------------------------------------------------------------- layers


@configured("recurrent")
def recurrent(cell: Cell, *, reverse: bool = False, unroll: int | bool = 1) -> Layer:
    """Lift ``cell`` to a :class:`~jaxrnn.Layer` over whole sequences (see :func:`scan`).

    Params are ``cell``'s; the carry is ``cell``'s; ``apply`` returns
    ``(final_carry, ys (T, cell.output_size))``. ``key`` is accepted and ignored.
    """

    def apply(params, xs, carry=None, *, length=None, mask=None, reset=None, key=None):
        del key  # scan validates xs, params, carry, length, mask and reset
        return scan(
            cell,
            params,
            xs,
            carry,
            length=length,
            mask=mask,
            reverse=reverse,
            reset=reset,
            unroll=unroll,
        )

    return Layer(cell.init, cell.initial_carry, apply, cell.input_size, cell.output_size)


_MERGES: dict[str, Callable[[Array, Array], Array]] = {
    "concat": lambda a, b: jnp.concatenate([a, b], axis=-1),
    "sum": jnp.add,
    "mean": lambda a, b: (a + b) / 2,
    "mul": jnp.multiply,
}


@configured("bidirectional")
def bidirectional(
    forward: Cell,
    backward: Cell | None = None,
    *,
    merge: str | Callable[[Array, Array], Array] = "concat",
    unroll: int | bool = 1,
) -> Layer:
    """A bidirectional layer (Schuster & Paliwal 1997).

    ``forward`` reads ``x_0 .. x_{L-1}``; ``backward`` (default: the same cell type
    with its own parameters) reads ``x_{L-1} .. x_0``. Output at ``t`` is
    ``merge(y_fwd_t, y_bwd_t)``; ``"concat"`` (default, width ``2*output_size``),
    ``"sum"``, ``"mean"``, ``"mul"`` or a callable.

    Params and carry are pairs ``(forward, backward)``; the backward final carry is the
    one after it reads ``x_0``. The two directions run through
    :func:`jaxrnn.engine.scan_pair` (the built-in LSTM and GRU: both in one oneDNN call
    where it applies).
    """
    backward = forward if backward is None else backward
    if backward.input_size != forward.input_size:
        raise ValueError(
            f"backward.input_size must equal forward.input_size ({forward.input_size}), "
            f"got {backward.input_size}"
        )
    merge_fn = _MERGES.get(merge) if isinstance(merge, str) else merge
    if merge_fn is None or not callable(merge_fn):
        raise ValueError(f"merge must be one of {sorted(_MERGES)} or a callable, got {merge!r}")
    if merge in ("sum", "mean", "mul") and forward.output_size != backward.output_size:
        raise ValueError(
            f"merge={merge!r} needs equal output sizes, got forward.output_size="
            f"{forward.output_size} and backward.output_size={backward.output_size} "
            "(use merge='concat')"
        )
    if merge == "concat":
        out = None
        if forward.output_size is not None and backward.output_size is not None:
            out = forward.output_size + backward.output_size
    else:
        out = forward.output_size

    def init(key):
        kf, kb = jax.random.split(key)
        return (forward.init(kf), backward.init(kb))

    def initial_carry(params):
        return (forward.initial_carry(params[0]), backward.initial_carry(params[1]))

    def apply(params, xs, carry=None, *, length=None, mask=None, reset=None, key=None):
        if not (isinstance(params, tuple) and len(params) == 2):
            raise ValueError(
                "params must be a pair (forward_params, backward_params), got "
                f"{type(params).__name__}"
            )
        if carry is None:
            carry = initial_carry(params)
        elif not (isinstance(carry, tuple) and len(carry) == 2):
            raise ValueError("carry must be a pair (forward_carry, backward_carry)")
        concat = merge == "concat"
        carries, ys = scan_pair(
            forward,
            params[0],
            backward,
            params[1],
            xs,
            carry,
            length=length,
            mask=mask,
            reset=reset,
            unroll=unroll,
            concat=concat,
        )
        return carries, ys if concat else merge_fn(*ys)

    return Layer(init, initial_carry, apply, forward.input_size, out)


def _as_layer(x: Layer | Cell) -> Layer:
    return recurrent(x) if isinstance(x, Cell) else x


def _dropout(key: PRNGKey, rate: float, y: Array) -> Array:
    if rate == 1.0:  # everything dropped (torch accepts p = 1): no 1/(1 - p)
        return jnp.zeros_like(y)
    keep = jax.random.bernoulli(key, 1.0 - rate, y.shape)
    return jnp.where(keep, y / (1.0 - rate), jnp.zeros_like(y))


def check_dropout(dropout: float) -> float:
    """A dropout probability in ``[0, 1]`` (``1`` drops everything, as in torch)."""
    return check_probability("dropout", dropout)


@configured("stack")
def stack(*layers: Layer | Cell, dropout: float = 0.0) -> Layer:
    """Stack layers: the outputs of layer ``k`` are the inputs of layer ``k+1``.

    With ``dropout > 0`` and a ``key`` passed to ``apply``, inverted dropout (each
    element kept with probability ``1 - dropout`` and scaled by ``1/(1 - dropout)``) is
    applied to the outputs of every layer except the last, as in ``torch.nn.LSTM``
    (``dropout = 1`` zeroes them).
    Without a key no dropout is applied (evaluation mode).

    Cells are lifted with :func:`recurrent`. Params and carry are tuples with one entry
    per layer. ``length`` and ``reset`` apply to every layer.
    """
    if not layers:
        raise ValueError("stack needs at least one layer")
    dropout = check_dropout(dropout)
    layers = tuple(_as_layer(layer) for layer in layers)
    for k in range(1, len(layers)):
        prev, cur = layers[k - 1].output_size, layers[k].input_size
        if prev is not None and cur is not None and prev != cur:
            raise ValueError(
                f"layer {k} input_size must equal layer {k - 1} output_size ({prev}), got {cur}"
            )

    def init(key):
        keys = jax.random.split(key, len(layers))
        return tuple(layer.init(k) for layer, k in zip(layers, keys))

    def initial_carry(params):
        return tuple(layer.initial_carry(p) for layer, p in zip(layers, params))

    def apply(params, xs, carry=None, *, length=None, mask=None, reset=None, key=None):
        if not (isinstance(params, tuple) and len(params) == len(layers)):
            raise ValueError(
                f"params must be a tuple with one entry per layer ({len(layers)}), "
                f"got {type(params).__name__}"
            )
        if carry is None:
            carry = initial_carry(params)
        elif not (isinstance(carry, tuple) and len(carry) == len(layers)):
            raise ValueError(f"carry must be a tuple with one entry per layer ({len(layers)})")
        keys = [None] * (2 * len(layers))
        if key is not None:
            keys = list(jax.random.split(key, 2 * len(layers)))
        carries = []
        ys = xs
        for k, (layer, p, c) in enumerate(zip(layers, params, carry)):
            c, ys = layer.apply(p, ys, c, length=length, mask=mask, reset=reset, key=keys[2 * k])
            carries.append(c)
            if dropout > 0.0 and key is not None and k < len(layers) - 1:
                ys = _dropout(keys[2 * k + 1], dropout, ys)
        return tuple(carries), ys

    return Layer(init, initial_carry, apply, layers[0].input_size, layers[-1].output_size)


# ---------------------------------------------------------------------------- batching


def apply_batched(
    layer: Layer,
    params: Params,
    xs: Array,
    carry: Carry | None = None,
    *,
    length: Array | None = None,
    mask: Array | None = None,
    reset: Array | None = None,
    key: PRNGKey | None = None,
) -> tuple[Carry, Array]:
    """``layer.apply`` over any number of leading batch dimensions, by ``jax.vmap``.

    ``xs (*batch, T, I)``; ``carry`` leaves ``(*batch, ...)`` or ``None``; ``length``
    ``(*batch,)``; ``mask (*batch, T)``; ``reset (*batch, T)``; ``key`` is split into
    one key per example.
    Returns ``carry`` with leaves ``(*batch, ...)`` and ``ys (*batch, T, output_size)``.
    """
    if not hasattr(xs, "shape") or jnp.ndim(xs) < 2:
        raise ValueError(
            f"xs must be an array of shape (*batch, T, input_size), got {np.shape(xs)}"
        )
    batch = tuple(xs.shape[:-2])
    T = xs.shape[-2]
    length, mask, reset = (
        None if a is None else _as_array(a, name)
        for a, name in ((length, "length"), (mask, "mask"), (reset, "reset"))
    )
    if length is not None:
        if jnp.shape(length) != batch:
            raise ValueError(f"length must have shape {batch}, got {jnp.shape(length)}")
        if not jnp.issubdtype(jnp.result_type(length), jnp.integer):
            raise ValueError(f"length must be integers, got dtype {jnp.result_type(length)}")
        check_length_values(length, T, "length")
    for name, flags in (("mask", mask), ("reset", reset)):
        if flags is not None and jnp.shape(flags) != (*batch, T):
            raise ValueError(f"{name} must have shape {(*batch, T)}, got {jnp.shape(flags)}")
    if carry is not None:
        for path, leaf in jax.tree_util.tree_leaves_with_path(carry):
            if tuple(jnp.shape(leaf)[: len(batch)]) != batch:
                raise ValueError(
                    f"carry{jax.tree_util.keystr(path)} must have leading batch dimensions "
                    f"{batch} (those of xs {tuple(xs.shape)}), got shape {jnp.shape(leaf)}"
                )
    n = math.prod(batch)  # not int(): a symbolic dimension under jax.export
    flat = lambda a, k: None if a is None else a.reshape((n, *a.shape[k:]))  # noqa: E731
    x2 = flat(xs, len(batch))
    c2 = None if carry is None else jax.tree_util.tree_map(lambda a: flat(a, len(batch)), carry)
    l2 = flat(length, len(batch))
    m2 = flat(mask, len(batch))
    r2 = flat(reset, len(batch))
    k2 = None if key is None else jax.random.split(key, n)

    def one(x, c, ln, m, r, k):
        return layer.apply(params, x, c, length=ln, mask=m, reset=r, key=k)

    axes = tuple(None if a is None else 0 for a in (x2, c2, l2, m2, r2, k2))
    c_out, ys = jax.vmap(one, in_axes=axes)(x2, c2, l2, m2, r2, k2)
    unflat = lambda a: a.reshape((*batch, *a.shape[1:]))  # noqa: E731
    return jax.tree_util.tree_map(unflat, c_out), unflat(ys)


def pad_sequences(
    sequences, *, batch_first: bool = False, padding_value: float = 0.0
) -> tuple[Array, Array]:
    """A list of variable-length arrays as one padded batch and its lengths.

    ``sequences[b]`` has shape ``(L_b, *feature)`` (the same ``feature`` shape and a
    common dtype for all); the result is ``padded (T, B, *feature)`` (``(B, T,
    *feature)`` with ``batch_first``) with ``T = max_b L_b``, ``padded[:L_b, b] =
    sequences[b]`` and ``padding_value`` elsewhere, and ``lengths (B,)`` int32: what
    ``torch.nn.utils.rnn.pad_sequence`` returns, plus the lengths that
    ``pack_padded_sequence`` would be given. Feed them to :mod:`jaxrnn.nn` layers as
    ``layer.apply(params, padded, lengths=lengths)`` (or to :func:`apply_batched` with
    ``batch_first=True``). Runs on the host (NumPy), before any tracing.

    Raises:
      ValueError: an empty list, a non-array entry, a 0-d entry, or differing feature
        shapes (naming the entry).
    """
    if isinstance(sequences, (str, bytes)) or not isinstance(sequences, (list, tuple)):
        raise ValueError(f"sequences must be a list of arrays, got {type(sequences).__name__}")
    if not sequences:
        raise ValueError("sequences must be a non-empty list of arrays")
    arrays = []
    for b, seq in enumerate(sequences):
        if isinstance(seq, jax.core.Tracer):
            raise ValueError(f"sequences[{b}] is traced; pad_sequences runs before jax.jit")
        a = np.asarray(seq)
        if a.dtype == object or a.ndim < 1:
            raise ValueError(
                f"sequences[{b}] must be an array of shape (L, *feature), got {np.shape(seq)}"
            )
        if arrays and a.shape[1:] != arrays[0].shape[1:]:
            raise ValueError(
                f"sequences[{b}] has feature shape {a.shape[1:]}, expected "
                f"{arrays[0].shape[1:]} (that of sequences[0])"
            )
        arrays.append(a)
    dtype = np.result_type(*arrays)
    lengths = np.array([len(a) for a in arrays], np.int32)
    T = int(lengths.max())
    out = np.full((len(arrays), T, *arrays[0].shape[1:]), padding_value, dtype)
    for b, a in enumerate(arrays):
        out[b, : len(a)] = a
    if not batch_first:
        out = np.swapaxes(out, 0, 1)
    return jnp.asarray(out), jnp.asarray(lengths)
