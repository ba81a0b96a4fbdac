r"""Online learners: every gradient method as ``(init, step)`` pure functions that consume
one time step and update the parameters with an optax optimiser.

This is the fully online protocol (REFERENCES.md §C): a single unbroken stream, batch
one, the carry never reset, an update every ``update_every`` steps. The influence
carried by RTRL (or its approximation) is "stale": it mixes derivatives taken at past
parameter values, which is the standard online-RTRL approximation and vanishes as the
learning rate goes to 0. BPTT cannot do this; truncated BPTT can only update at the end
of each window of ``k`` steps.

::

    learner = jaxrnn.grad.online(cell, step_loss, optax.adam(1e-3), method="rtrl")
    state = learner.init((cell_params, head_params))
    def body(state, xt):
        state, metrics = learner.step(state, *xt)
        return state, metrics["loss"]
    state, losses = jax.lax.scan(body, state, (xs, targets))   # prequential losses

``metrics["loss"]`` is the prequential ("test-then-train") loss at ``t``: computed with
the parameters before the update at ``t``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxrnn.base import Cell, tree_select
from jaxrnn.engine import check_carry, run
from jaxrnn.grad._common import (
    StepLoss,
    check_params_pair,
    check_positive_int,
    flat_cell,
    initial_influence,
    method_step,
    tree_add,
    zeros_like_tree,
)
from jaxrnn.grad.registry import GRADIENT_METHODS

__all__ = ["METHODS", "OnlineLearner", "OnlineState", "online"]

METHODS = tuple(name for name, m in GRADIENT_METHODS.items() if m.online)


class OnlineState(NamedTuple):
    """State of an online learner.

    Attributes:
      params: ``(cell_params, head_params)``.
      opt_state: the optax state.
      carry: the cell's carry (the stream is never reset).
      trace: the method's trace: influence ``M (S, P)`` (RTRL), compressed ``E``
        (diagonal RTRL, SnAp-1), ``(s, theta_tilde)`` (UORO), ``B`` (RFLO) or
        ``(xs_buffer, targets_buffer, window_start_carry)`` (TBPTT).
      grads: gradients accumulated since the last update.
      count: number of steps consumed (int32).
      key: PRNG key (UORO) or ``None``.
    """

    params: Any
    opt_state: Any
    carry: Any
    trace: Any
    grads: Any
    count: jax.Array
    key: Any


class OnlineLearner(NamedTuple):
    """``init(params, key=None, *, carry=None, x_like=None, target_like=None) -> state``
    and ``step(state, x_t, target_t) -> (state, metrics)`` with
    ``metrics = {"loss": prequential loss at t, "updated": bool}``."""

    init: Any
    step: Any


def online(
    cell: Cell,
    step_loss: StepLoss,
    optimizer: optax.GradientTransformation,
    method: str = "rtrl",
    *,
    update_every: int = 1,
    k: int | None = None,
    alpha: float = 1.0,
    diagonal: bool | None = None,
) -> OnlineLearner:
    """An online learner for ``cell`` with readout loss ``step_loss``.

    Args:
      cell: any :class:`~jaxrnn.Cell` (``rflo``: Elman-type only).
      step_loss: ``(head_params, y_t, target_t) -> scalar``.
      optimizer: an ``optax.GradientTransformation``, applied to the gradient summed
        over the last ``update_every`` steps.
      method: ``"rtrl"`` (exact; element-wise cells use the ``O(P)`` path),
        ``"snap1"``, ``"uoro"`` (``init`` needs a key), ``"rflo"`` or ``"tbptt"``
        (truncated BPTT(k, k): an update at the end of every window of ``k`` steps,
        from the window's loss with the carry entering the window held constant).
      update_every: update every this many steps (forward methods); ``1`` is fully
        online.
      k: window length for ``"tbptt"`` (required there, rejected elsewhere).
      alpha: RFLO leak in ``(0, 1]``.
      diagonal: for ``"rtrl"``: use the element-wise path (default ``cell.diagonal``).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    update_every = check_positive_int("update_every", update_every)
    if method == "tbptt":
        if k is None:
            raise ValueError("method='tbptt' needs the window length k (an integer >= 1)")
        k = check_positive_int("k", k)
        return _online_tbptt(cell, step_loss, optimizer, k)
    if k is not None:
        raise ValueError(f"k is the TBPTT window length; method={method!r} does not take it")
    entry = GRADIENT_METHODS[method]
    given = {"alpha": alpha, "diagonal": diagonal}
    fm = entry.forward(cell, **{k: v for k, v in given.items() if k in entry.options})

    def _x_like(cell_params, x_like):
        if x_like is not None:
            return jnp.zeros(jnp.shape(x_like), jnp.result_type(x_like))
        if cell.input_size is None:
            raise ValueError("x_like is required when cell.input_size is None")
        dtype = jax.tree_util.tree_leaves(cell_params)[0].dtype
        return jnp.zeros((cell.input_size,), dtype)

    def init(params, key=None, *, carry=None, x_like=None, target_like=None):
        del target_like
        cell_params, _ = check_params_pair(params)
        if fm.needs_key and key is None:
            raise ValueError("method='uoro' is stochastic: init needs key=jax.random.key(...)")
        if carry is not None:
            check_carry(carry, jax.eval_shape(cell.initial_carry, cell_params))
        from_init = carry is None
        carry = cell.initial_carry(cell_params) if from_init else carry
        fc, theta, c = flat_cell(cell, cell_params, carry)
        ctx = fm.prepare(cell, fc, theta, c, _x_like(cell_params, x_like))
        M0 = initial_influence(cell, fc, theta) if from_init else None
        k0 = None
        if fm.needs_key:
            key, k0 = jax.random.split(key)
        trace = fm.init(ctx, theta, c, M0, k0)
        return OnlineState(
            params=params,
            opt_state=_opt_init(optimizer, params),
            carry=carry,
            trace=trace,
            grads=zeros_like_tree(params),
            count=jnp.zeros((), jnp.int32),
            key=key if fm.needs_key else None,
        )

    def step(state: OnlineState, x, target):
        cell_params, head = state.params
        fc, theta, c = flat_cell(cell, cell_params, state.carry)
        ctx = fm.prepare(cell, fc, theta, c, x)
        key, sub = (None, None)
        if fm.needs_key:
            key, sub = jax.random.split(state.key)
        c_new, trace, loss, g, gh = method_step(
            fm, ctx, fc, step_loss, theta, head, c, state.trace, x, target, sub
        )
        grads = tree_add(state.grads, (fc.unravel_params(g), gh))
        count = state.count + 1
        params, opt_state, updated = _maybe_update(
            optimizer,
            state.params,
            state.opt_state,
            grads,
            count % update_every == 0,
            always=update_every == 1,
        )
        if update_every > 1:
            grads = tree_select(updated, zeros_like_tree(grads), grads)
        else:
            grads = zeros_like_tree(grads)
        new = OnlineState(params, opt_state, fc.unravel_carry(c_new), trace, grads, count, key)
        return new, {"loss": loss, "updated": updated}

    return OnlineLearner(init, step)


def _apply(optimizer, grads, opt_state, params):
    # optax mixes int32 counts with floats: allow standard promotion inside it only.
    with jax.numpy_dtype_promotion("standard"):
        updates, new_opt = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), new_opt


def _opt_init(optimizer, params):
    with jax.numpy_dtype_promotion("standard"):
        return optimizer.init(params)


def _maybe_update(optimizer, params, opt_state, grads, do, *, always):
    new_params, new_opt = _apply(optimizer, grads, opt_state, params)
    if always:
        return new_params, new_opt, jnp.asarray(True)
    return tree_select(do, new_params, params), tree_select(do, new_opt, opt_state), do


def _online_tbptt(cell, step_loss, optimizer, k):
    def window_loss(params, c, xs, targets):
        cell_params, head = params
        _, ys = run(cell, cell_params, xs, jax.lax.stop_gradient(c))
        return jnp.sum(jax.vmap(step_loss, in_axes=(None, 0, 0))(head, ys, targets))

    def init(params, key=None, *, carry=None, x_like=None, target_like=None):
        del key
        cell_params, _ = check_params_pair(params)
        if target_like is None:
            raise ValueError("method='tbptt' needs target_like (an example target_t) in init")
        if carry is not None:
            check_carry(carry, jax.eval_shape(cell.initial_carry, cell_params))
        carry = cell.initial_carry(cell_params) if carry is None else carry
        if x_like is None:
            if cell.input_size is None:
                raise ValueError("x_like is required when cell.input_size is None")
            x_like = jnp.zeros((cell.input_size,), jax.tree_util.tree_leaves(cell_params)[0].dtype)
        buf = lambda a: jnp.zeros((k, *jnp.shape(a)), jnp.result_type(a))  # noqa: E731
        trace = (buf(x_like), jax.tree_util.tree_map(buf, target_like), carry)
        return OnlineState(
            params,
            _opt_init(optimizer, params),
            carry,
            trace,
            None,
            jnp.zeros((), jnp.int32),
            None,
        )

    def step(state: OnlineState, x, target):
        cell_params, head = state.params
        bx, bt, start = state.trace
        c_new, y = cell.step(cell_params, state.carry, x)
        loss = step_loss(head, y, target)
        pos = state.count % k
        bx = bx.at[pos].set(x)
        bt = jax.tree_util.tree_map(lambda b, v: b.at[pos].set(v), bt, target)
        done = pos == k - 1

        def update(_):
            g = jax.grad(window_loss)(state.params, start, bx, bt)
            params, opt_state = _apply(optimizer, g, state.opt_state, state.params)
            return params, opt_state, c_new

        def keep(_):
            return state.params, state.opt_state, start

        params, opt_state, start = jax.lax.cond(done, update, keep, None)
        new = OnlineState(params, opt_state, c_new, (bx, bt, start), None, state.count + 1, None)
        return new, {"loss": loss, "updated": done}

    return OnlineLearner(init, step)
