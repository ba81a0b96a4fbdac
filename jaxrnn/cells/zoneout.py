"""Zoneout: units randomly keep their previous state (Krueger et al. 2017)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxrnn.base import Cell, PRNGKey, configured
from jaxrnn.cells._common import carry_field, check_cell, check_rate

_COUNTER_CYCLE = 2.0**24  # the counter stays an exact integer in float32


class ZoneoutCarry(NamedTuple):
    """``state``: the wrapped cell's carry; ``key_bits (2K,)``: the key's ``K`` 32-bit
    words as 16-bit halves (exact in any float dtype); ``active ()``: 1 when a key was
    given; ``t ()``: the step counter that selects each step's masks."""

    state: Any
    key_bits: jax.Array
    active: jax.Array
    t: jax.Array


@configured("zoneout")
def zoneout(cell: Cell, rate: float, *, cell_rate: float | None = None) -> Cell:
    r"""Zoneout (Krueger et al., ICLR 2017): at each step each unit keeps its previous
    value with probability ``rate`` instead of taking the new one.

    With independent masks :math:`d_t \sim \mathrm{Bernoulli}(z)` drawn at every step
    (for an LSTM, :math:`z_h` = ``rate`` for ``h`` and :math:`z_c` = ``cell_rate`` for
    ``c``):

    .. math::

        (\tilde c_t, \_) = \text{step}(\theta, c_{t-1}, x_t), \qquad
        h_t = d_t \odot h_{t-1} + (1 - d_t) \odot \tilde h_t, \qquad y_t = h_t

    where ``h`` is the carry itself (an array carry) or its ``h`` field, and ``c`` its
    ``c`` field (:class:`~jaxrnn.LSTMCarry`); other fields (counters) are never zoned
    out. The output is the zoned-out ``h_t``.

    The key comes through the carry: ``initial_carry(params, key=None)``. With a key
    the masks are random, a different one at every step (drawn from the key and the
    step index, so a run is reproducible). A ``reset`` flag restarts the wrapped cell's
    state and keeps the key and counter (``Cell.reset``). Without a key (also
    :func:`jaxrnn.scan`'s default carry) nothing is random: the wrapper uses the
    expectation, :math:`h_t = z h_{t-1} + (1 - z) \tilde h_t`, Krueger et al.'s rule
    at test time; with ``rate = cell_rate = 0`` it is ``cell`` exactly. The parameters
    are the wrapped cell's own; the key and counter sit in the carry as constants for
    every gradient method.

    Args:
      cell: a :class:`~jaxrnn.Cell` whose carry is an array or has an ``h`` field.
      rate: :math:`z_h \in [0, 1)`.
      cell_rate: :math:`z_c \in [0, 1)` for a carry with a ``c`` field; default ``rate``.

    Returns:
      A :class:`~jaxrnn.Cell` with carry :class:`ZoneoutCarry`.
    """
    check_cell("cell", cell)
    z_h = check_rate("rate", rate)
    template = jax.eval_shape(lambda k: cell.initial_carry(cell.init(k)), jax.random.key(0))
    fields = [("h", z_h, *carry_field(template, "h", "zoneout"))]
    has_c = hasattr(template, "_fields") and "c" in template._fields
    if cell_rate is not None:
        z_c = check_rate("cell_rate", cell_rate)
        if not has_c:
            raise ValueError("cell_rate needs a cell whose carry has a 'c' field (an LSTM)")
    else:
        z_c = z_h
    if has_c:
        fields.append(("c", z_c, *carry_field(template, "c", "zoneout")))
    key_shape = jax.random.key_data(jax.random.key(0)).shape

    def initial_carry(params, key: PRNGKey | None = None):
        state = cell.initial_carry(params)
        dt = jax.tree_util.tree_leaves(state)[0].dtype
        if key is None:
            bits = jnp.zeros((2 * key_shape[0],), dt)
            active = jnp.zeros((), dt)
        else:
            data = (
                jax.random.key_data(key)
                if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
                else jnp.asarray(key)
            )
            if data.shape != key_shape or data.dtype != jnp.uint32:
                raise ValueError(
                    f"key must be a jax.random.key (data {key_shape} uint32), got "
                    f"{data.dtype} {data.shape}"
                )
            bits = jnp.stack([data >> 16, data & 0xFFFF], axis=1).reshape(-1).astype(dt)
            active = jnp.ones((), dt)
        return ZoneoutCarry(state, bits, active, jnp.zeros((), dt))

    def step(params, carry, x):
        new, _ = cell.step(params, carry.state, x)
        halves = jnp.round(carry.key_bits).astype(jnp.uint32).reshape(-1, 2)
        key = jax.random.wrap_key_data((halves[:, 0] << 16) | halves[:, 1])
        key = jax.random.fold_in(key, jnp.round(carry.t).astype(jnp.uint32))
        keys = jax.random.split(key, len(fields))
        for (_, z, get, put), k in zip(fields, keys):
            old, fresh = get(carry.state), get(new)
            d = jax.random.bernoulli(k, z, fresh.shape).astype(fresh.dtype)
            w = carry.active * d + (1 - carry.active) * z  # Bernoulli draw, or its mean
            new = put(new, w * old + (1 - w) * fresh)
        t = jnp.mod(jnp.round(carry.t) + 1, jnp.asarray(_COUNTER_CYCLE, carry.t.dtype))
        return carry._replace(state=new, t=t), fields[0][2](new)

    def reset(params, carry):  # a new episode restarts the state and keeps the key
        return carry._replace(state=cell.restart(params, carry.state))

    return Cell(cell.init, initial_carry, step, cell.input_size, cell.output_size, reset=reset)
