"""Conditional RNN: the initial state computed from a conditioning vector (seed 000)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn.base import Cell, configured
from jaxrnn.cells._common import check_cell, check_float_dtype, check_positive_int

_ACTIVATIONS = {None: lambda a: a, "tanh": jnp.tanh}


class StateMapParams(NamedTuple):
    """One affine map per carry leaf: ``w[k] (n_k, C)``, ``b[k] (n_k,)`` with ``n_k`` the
    size of leaf ``k`` (in ``jax.tree_util`` leaf order)."""

    w: tuple
    b: tuple


class StateMap(NamedTuple):
    """``init(key) -> StateMapParams``; ``apply(params, z (C,)) -> state`` shaped like
    the template."""

    init: Callable
    apply: Callable


def conditional_state(
    template: Any, cond_size: int, *, activation: str | None = None, dtype=None
) -> StateMap:
    r"""A learned map from a conditioning vector ``z (C,)`` to a recurrent state.

    For each leaf ``s_k`` of ``template`` (any pytree of arrays or
    ``jax.ShapeDtypeStruct``: a cell's carry, or one example's ``(h_0, c_0)`` of a
    :mod:`jaxrnn.nn` layer with shapes ``(L*D, H)``):

    .. math:: s_k = \phi(W_k z + b_k) \text{ reshaped to } \mathrm{shape}(s_k)

    with :math:`\phi` the identity (default) or ``tanh``; ``W_k, b_k`` start at
    ``U(-1/sqrt(C), 1/sqrt(C))`` (``torch.nn.Linear``). One example per call: batch with
    ``jax.vmap`` (for an ``nn`` layer move the batch axis to 1 afterwards).

    Args:
      template: the state's structure, shapes and dtypes.
      cond_size: ``C``.
      activation: ``None`` or ``"tanh"``.
      dtype: parameter dtype (default: the dtype of the first leaf).
    """
    check_positive_int("cond_size", cond_size)
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be None or 'tanh', got {activation!r}")
    phi = _ACTIVATIONS[activation]
    leaves, treedef = jax.tree_util.tree_flatten(template)
    if not leaves:
        raise ValueError("template must have at least one array leaf")
    shapes = [tuple(np.shape(a)) for a in leaves]
    dtype = check_float_dtype("dtype", leaves[0].dtype if dtype is None else dtype)
    bound = 1.0 / math.sqrt(cond_size)

    def init(key):
        keys = jax.random.split(key, 2 * len(shapes))
        w, b = [], []
        for k, shape in enumerate(shapes):
            n = math.prod(shape)
            w.append(jax.random.uniform(keys[2 * k], (n, cond_size), dtype, -bound, bound))
            b.append(jax.random.uniform(keys[2 * k + 1], (n,), dtype, -bound, bound))
        return StateMapParams(tuple(w), tuple(b))

    def apply(params, z):
        if jnp.shape(z) != (cond_size,):
            raise ValueError(f"z must have shape ({cond_size},), got {jnp.shape(z)}")
        out = [phi(w @ z + b).reshape(s) for w, b, s in zip(params.w, params.b, shapes)]
        return jax.tree_util.tree_unflatten(treedef, out)

    return StateMap(init, apply)


class ConditionalParams(NamedTuple):
    """``cell``: the wrapped cell's parameters; ``state_map``: :class:`StateMapParams`."""

    cell: Any
    state_map: StateMapParams


class ConditionalCarry(NamedTuple):
    """``state``: the wrapped cell's carry; ``started ()``: 0 before the first step of an
    episode (the state is then taken from ``z``), 1 after."""

    state: Any
    started: jax.Array


@configured("conditional")
def conditional(cell: Cell, cond_size: int, *, activation: str | None = None) -> Cell:
    r"""Conditional RNN: ``cell`` with its initial state computed from a conditioning
    vector ``z`` by a learned map (seed 000's "conditional RNN"; image captioning's
    ``h_0 = W z + b``).

    The cell reads ``x_t = [z; u_t] (C + I,)`` at every step (``z`` repeated over time,
    e.g. ``jnp.concatenate([jnp.broadcast_to(z, (T, C)), us], 1)``) and uses ``z`` only
    at the first step of each episode:

    .. math::

        c_0 = \phi(W z + b) \ \text{(per carry leaf, see :func:`conditional_state`)},
        \qquad (c_t, y_t) = \text{step}(\theta, c_{t-1}, u_t)

    Being an ordinary cell, it works with every sequence option (``length``,
    ``reverse``, ``reset`` restarts from ``z``) and every gradient method; RTRL learns
    the map through the step. For the :mod:`jaxrnn.nn` layers, compute their initial
    state with :func:`conditional_state` instead.

    Args:
      cell: any :class:`~jaxrnn.Cell` with a declared ``input_size``.
      cond_size: ``C``.
      activation: ``None`` (default, affine) or ``"tanh"``.

    Returns:
      A :class:`~jaxrnn.Cell` with params :class:`ConditionalParams`, carry
      :class:`ConditionalCarry` and ``input_size = C + I``.
    """
    check_cell("cell", cell)
    check_positive_int("cond_size", cond_size)
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be None or 'tanh', got {activation!r}")
    if cell.input_size is None:
        raise ValueError("cell must declare input_size to be wrapped by conditional")
    C = cond_size
    maps: dict = {}

    def state_map(p):
        template = jax.eval_shape(cell.initial_carry, p)
        key = (
            jax.tree_util.tree_structure(template),
            tuple((a.shape, str(a.dtype)) for a in jax.tree_util.tree_leaves(template)),
        )
        if key not in maps:
            maps[key] = conditional_state(template, C, activation=activation)
        return maps[key]

    def init(key):
        k_cell, k_map = jax.random.split(key)
        p = cell.init(k_cell)
        return ConditionalParams(p, state_map(p).init(k_map))

    def initial_carry(params):
        state = cell.initial_carry(params.cell)
        dt = jax.tree_util.tree_leaves(state)[0].dtype
        return ConditionalCarry(state, jnp.zeros((), dt))

    def step(params, carry, x):
        z, u = x[:C], x[C:]
        start = state_map(params.cell).apply(params.state_map, z)
        state = jax.tree_util.tree_map(
            lambda a, b: jnp.where(carry.started > 0.5, a, b), carry.state, start
        )
        state, y = cell.step(params.cell, state, u)
        return ConditionalCarry(state, jnp.ones_like(carry.started)), y

    return Cell(init, initial_carry, step, C + cell.input_size, cell.output_size)
