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

from jaxrnn.base import Array, Carry, Cell, Layer, Params, PRNGKey
from jaxrnn.engine import _is_concrete, check_carry, check_inputs, scan

__all__ = [
    "apply_batched",
    "bidirectional",
    "check_carry",
    "check_dropout",
    "check_inputs",
    "recurrent",
    "scan",
    "stack",
]


# ----------------------------------------------------------------------------- layers


def recurrent(cell: Cell, *, reverse: bool = False, unroll: int | bool = 1) -> Layer:
    """Lift ``cell`` to a :class:`~jaxrnn.Layer` over whole sequences (see :func:`scan`).

    Params are ``cell``'s; the carry is ``cell``'s; ``apply`` returns
    ``(final_carry, ys (T, cell.output_size))``. ``key`` is accepted and ignored.
    """

    def apply(params, xs, carry=None, *, length=None, mask=None, reset=None, key=None):
        del key
        check_inputs(xs, cell.input_size)
        if carry is not None:
            check_carry(carry, jax.eval_shape(cell.initial_carry, params))
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
    one after it reads ``x_0``.
    """
    backward = forward if backward is None else backward
    if backward.input_size != forward.input_size:
        raise ValueError(
            f"backward.input_size must equal forward.input_size ({forward.input_size}), "
            f"got {backward.input_size}"
        )
    merge_fn = _MERGES.get(merge) if isinstance(merge, str) else merge
    if merge_fn is None:
        raise ValueError(f"merge must be one of {sorted(_MERGES)} or a callable, got {merge!r}")
    if merge == "concat":
        out = None
        if forward.output_size is not None and backward.output_size is not None:
            out = forward.output_size + backward.output_size
    else:
        out = forward.output_size
    fwd = recurrent(forward, unroll=unroll)
    bwd = recurrent(backward, reverse=True, unroll=unroll)

    def init(key):
        kf, kb = jax.random.split(key)
        return (fwd.init(kf), bwd.init(kb))

    def initial_carry(params):
        return (fwd.initial_carry(params[0]), bwd.initial_carry(params[1]))

    def apply(params, xs, carry=None, *, length=None, mask=None, reset=None, key=None):
        if carry is None:
            carry = initial_carry(params)
        elif not (isinstance(carry, tuple) and len(carry) == 2):
            raise ValueError("carry must be a pair (forward_carry, backward_carry)")
        cf, yf = fwd.apply(params[0], xs, carry[0], length=length, mask=mask, reset=reset)
        cb, yb = bwd.apply(params[1], xs, carry[1], length=length, mask=mask, reset=reset)
        return (cf, cb), merge_fn(yf, yb)

    return Layer(init, initial_carry, apply, forward.input_size, out)


def _as_layer(x: Layer | Cell) -> Layer:
    return recurrent(x) if isinstance(x, Cell) else x


def _dropout(key: PRNGKey, rate: float, y: Array) -> Array:
    keep = jax.random.bernoulli(key, 1.0 - rate, y.shape)
    return jnp.where(keep, y / (1.0 - rate), jnp.zeros_like(y))


def check_dropout(dropout: float) -> float:
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)):
        raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    return float(dropout)


def stack(*layers: Layer | Cell, dropout: float = 0.0) -> Layer:
    """Stack layers: the outputs of layer ``k`` are the inputs of layer ``k+1``.

    With ``dropout > 0`` and a ``key`` passed to ``apply``, inverted dropout (each
    element kept with probability ``1 - dropout`` and scaled by ``1/(1 - dropout)``) is
    applied to the outputs of every layer except the last, as in ``torch.nn.LSTM``.
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
    if jnp.ndim(xs) < 2:
        raise ValueError(f"xs must have shape (*batch, T, input_size), got {jnp.shape(xs)}")
    batch = tuple(xs.shape[:-2])
    if length is not None and jnp.shape(length) != batch:
        raise ValueError(f"length must have shape {batch}, got {jnp.shape(length)}")
    for name, flags in (("mask", mask), ("reset", reset)):
        if flags is not None and jnp.shape(flags) != (*batch, xs.shape[-2]):
            want = (*batch, xs.shape[-2])
            raise ValueError(f"{name} must have shape {want}, got {jnp.shape(flags)}")
    if length is not None and _is_concrete(length):
        lengths = np.asarray(length)
        if lengths.size and (lengths.min() < 1 or lengths.max() > xs.shape[-2]):
            raise ValueError(f"length must be in [1, {xs.shape[-2]}], got {lengths}")
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
