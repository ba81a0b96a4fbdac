"""Shared machinery of the gradient engines: validation, the raveled step, the
influence-pattern probe and the one-step driver every forward-mode method uses.

Conventions (used by every module in :mod:`jaxrnn.grad`):

- ``theta = ravel(cell_params) (P,)`` and ``c = ravel(carry) (S,)`` via
  :func:`jax.flatten_util.ravel_pytree`; ``f(theta, c, x) -> (c', y)`` is the raveled
  ``cell.step``.
- The loss at step ``t`` is ``L_t = step_loss(head, y_t, target_t)`` with
  ``(c_t, y_t) = f(theta, c_{t-1}, x_t)``. One VJP of ``f`` with cotangent
  ``(0, dL_t/dy_t)`` gives the *immediate* parameter gradient ``g_imm`` (``c_{t-1}``
  held fixed) and ``g_c = dL_t/dc_{t-1}``; then, with the influence
  ``M_{t-1} = dc_{t-1}/dtheta (S, P)``,

  .. math:: \\nabla_\\theta L_t = g_{imm} + g_c M_{t-1},
            \\qquad M_t = D_t M_{t-1} + I_t

  with ``D_t = df/dc (S, S)`` and ``I_t = df/dtheta (S, P)`` at step ``t``. Every
  method is this recursion, exact or approximated; it works for any cell, including
  ones whose output is not part of the carry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from jaxrnn.base import Cell, tree_select
from jaxrnn.checks import check_positive_int  # noqa: F401 - re-exported to the methods
from jaxrnn.engine import check_carry, check_flags, check_inputs, loop

StepLoss = Callable[[Any, jax.Array, Any], jax.Array]
GradFn = Callable[..., tuple[jax.Array, tuple[Any, Any]]]
GRAD_FN_DOC = """``grad_fn((cell_params, head_params), xs (T, I), targets (T, ...), carry0=None, *,
mask=None, key=None) -> (loss, (cell_grads, head_grads))``: every method of
:mod:`jaxrnn.grad` has this call; ``mask (T,)`` 0/1 drops steps, ``key`` is required by
stochastic methods (UORO) and ignored by the others."""


# ----------------------------------------------------------------------------- checks


def check_params_pair(params) -> tuple[Any, Any]:
    if not (isinstance(params, tuple) and len(params) == 2):
        raise ValueError(
            "params must be a pair (cell_params, head_params), got "
            f"{type(params).__name__}"
            + (f" of length {len(params)}" if isinstance(params, (tuple, list)) else "")
        )
    return params


def check_sequence_args(cell: Cell, params, xs, targets, carry0, mask) -> int:
    """Validate the arguments of a ``grad_fn`` call; return ``T``. Runs before tracing."""
    cell_params, _ = check_params_pair(params)
    check_inputs(xs, cell.input_size)
    T = xs.shape[0]
    leaves = jax.tree_util.tree_leaves(targets)
    if not leaves:
        raise ValueError("targets must be an array (or pytree of arrays) with leading axis T")
    for leaf in leaves:
        shape = jnp.shape(leaf)
        if len(shape) < 1 or shape[0] != T:
            raise ValueError(
                f"targets must have leading axis T={T} (the length of xs), got shape {shape}"
            )
    if carry0 is not None:
        check_carry(carry0, jax.eval_shape(cell.initial_carry, cell_params), name="carry0")
    if mask is not None:
        check_flags("mask", mask, T)
    return T


def as_mask(mask, T: int) -> jax.Array | None:
    """``mask`` as a boolean ``(T,)`` array, or ``None`` (every step counts)."""
    if mask is None:
        return None
    return jnp.asarray(mask).astype(bool)


def where_mask(m, new, old):
    """``new`` where the step counts (``m`` true or ``None``), else ``old`` (pytrees)."""
    return new if m is None else tree_select(m, new, old)


def zeros_like_tree(tree):
    return jax.tree_util.tree_map(jnp.zeros_like, tree)


def tree_add(a, b):
    return jax.tree_util.tree_map(jnp.add, a, b)


# ------------------------------------------------------------------------ raveled cell


class FlatCell(NamedTuple):
    """A cell seen in raveled coordinates (built per call from the param/carry shapes).

    ``f(theta (P,), c (S,), x) -> (c' (S,), y)``; ``unravel_params``/``unravel_carry``
    invert the ravel; ``P``, ``S`` are the sizes.
    """

    f: Callable
    unravel_params: Callable
    unravel_carry: Callable
    P: int
    S: int


def flat_cell(cell: Cell, cell_params, carry) -> tuple[FlatCell, jax.Array, jax.Array]:
    """``(FlatCell, theta, c)`` for ``cell`` at ``cell_params`` and ``carry``."""
    theta, unravel_p = ravel_pytree(cell_params)
    c, unravel_c = ravel_pytree(carry)

    def f(th, cc, x):
        new_c, y = cell.step(unravel_p(th), unravel_c(cc), x)
        return ravel_pytree(new_c)[0], y

    return FlatCell(f, unravel_p, unravel_c, theta.size, c.size), theta, c


def initial_influence(cell: Cell, fc: FlatCell, theta):
    """``M_0 = d ravel(initial_carry(params)) / d theta`` (zeros for the built-in cells)."""
    return jax.jacrev(lambda th: ravel_pytree(cell.initial_carry(fc.unravel_params(th)))[0])(theta)


# --------------------------------------------------------------------- pattern probe


class Pattern(NamedTuple):
    """Sparsity pattern of the immediate influence, compressed per parameter.

    ``units (K, P)`` int: the carry entries each parameter touches (padded);
    ``valid (K, P)`` bool; ``diag_D``: whether ``D_t`` is diagonal; ``K`` the most
    carry entries any parameter touches in one step (or through ``M_0``);
    ``out_idx (O,)`` int or ``None``: when the output is a sub-vector of the new carry
    (``y = c_t[out_idx]`` up to a few ulps of rounding at every probe point, true for
    every built-in cell), its indices; ``blocks``: the
    carry's units (:func:`carry_blocks`).
    """

    units: np.ndarray
    valid: np.ndarray
    diag_D: bool
    K: int
    out_idx: np.ndarray | None
    blocks: np.ndarray | None = None


def carry_blocks(pat_D: np.ndarray, pat_I: np.ndarray) -> np.ndarray | None:
    """The carry's units: the smallest groups of carry entries such that ``D_t`` is
    block-diagonal over them and every parameter touches one group (connected
    components of ``pattern(D) + pattern(D)^T`` joined by the columns of
    ``pattern(I)``). ``(n_units, k)`` int, each row a unit's entries in increasing
    order, or ``None`` when the units do not all have the same size ``k``.
    """
    S = pat_D.shape[0]
    parent = list(range(S))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i, j):
        parent[find(i)] = find(j)

    for i, j in np.argwhere(pat_D):
        union(int(i), int(j))
    for col in pat_I.T:
        rows = np.flatnonzero(col)
        for r in rows[1:]:
            union(int(rows[0]), int(r))
    groups: dict[int, list[int]] = {}
    for i in range(S):
        groups.setdefault(find(i), []).append(i)
    sizes = {len(g) for g in groups.values()}
    if len(sizes) != 1:
        return None
    return np.array(sorted(groups.values()), np.int32)


_PATTERNS: dict = {}


def probe_pattern(cell: Cell, fc: FlatCell, theta, c, x, *, draws: int = 12, seed: int = 0):
    """Structural sparsity of ``I_t`` (and ``M_0``) and of ``D_t`` from dense Jacobians
    at ``draws`` random points (parameters, carry and input all ~ N(0, 1)).

    Runs eagerly (``jax.ensure_compile_time_eval``) on shapes only, so it can be called
    while tracing; the cost is ``draws`` dense Jacobians, paid once per trace.
    """
    cache_key = (
        cell.step,
        cell.initial_carry,
        fc.S,
        fc.P,
        x.shape,
        str(theta.dtype),
        str(c.dtype),
        str(x.dtype),
        draws,
        seed,
    )
    if cache_key in _PATTERNS:
        return _PATTERNS[cache_key]
    th_dt, c_dt, x_dt = theta.dtype, c.dtype, x.dtype

    @jax.jit
    def accumulate():
        def body(i, acc):
            acc_I, acc_D, acc_same = acc
            kt, kc, kx = jax.random.split(jax.random.fold_in(jax.random.key(seed), i), 3)
            th = jax.random.normal(kt, (fc.P,), th_dt)
            cc = jax.random.normal(kc, (fc.S,), c_dt)
            xx = jax.random.normal(kx, x.shape, x_dt)
            I = jax.jacrev(lambda t: fc.f(t, cc, xx)[0])(th)
            D = jax.jacfwd(lambda k: fc.f(th, k, xx)[0])(cc)
            M0 = initial_influence(cell, fc, th)
            c_new, y = fc.f(th, cc, xx)
            y = jnp.reshape(y, (-1,))
            # Equal up to rounding: the output may be a second computation of a carry
            # entry, rounded differently by the compiler (a few ulps).
            a, b = c_new[:, None], y[None, :]
            tol = 4 * jnp.finfo(c_dt).eps * jnp.maximum(jnp.abs(a), jnp.abs(b))
            same = acc_same & (jnp.abs(a - b) <= tol)
            return acc_I + jnp.abs(I) + jnp.abs(M0), acc_D + jnp.abs(D), same

        y0 = jax.eval_shape(fc.f, theta, c, x)[1]
        zero = (
            jnp.zeros((fc.S, fc.P), th_dt),
            jnp.zeros((fc.S, fc.S), c_dt),
            jnp.ones((fc.S, int(np.prod(y0.shape))), bool),
        )
        return jax.lax.fori_loop(0, draws, body, zero)

    with jax.ensure_compile_time_eval():
        acc_I, acc_D, same = accumulate()
    same = np.asarray(same)
    out_idx = np.argmax(same, axis=0).astype(np.int32) if same.any(0).all() else None
    pat_I = np.asarray(acc_I) > 0
    pat_D = np.asarray(acc_D) > 0
    nnz = pat_I.sum(0)
    K = max(int(nnz.max()) if nnz.size else 1, 1)
    order = np.argsort(~pat_I, axis=0, kind="stable")[:K]  # touched rows first
    valid = np.take_along_axis(pat_I, order, axis=0)
    units = np.where(valid, order, 0)
    diag_D = bool(np.all(pat_D[~np.eye(fc.S, dtype=bool)] == 0))
    blocks = carry_blocks(pat_D, pat_I)
    pattern = Pattern(units.astype(np.int32), valid, diag_D, K, out_idx, blocks)
    _PATTERNS[cache_key] = pattern
    return pattern


# --------------------------------------------------------------------- method driver


class ForwardMethod(NamedTuple):
    r"""The protocol of a forward-mode gradient method: a *trace* carried beside the carry.

    Every forward-mode method (exact RTRL, element-wise RTRL, SnAp-1, UORO, RFLO) is
    the recursion of the module docstring, ``M_t = D_t M_{t-1} + I_t``, with the
    influence ``M`` held exactly or approximated by the method's trace. A method is
    four pure functions of named types (each method declares its ``Context`` and
    ``Trace`` NamedTuples or arrays):

    - ``prepare(cell, fc: FlatCell, theta (P,), c (S,), x) -> Context``: static facts
      for one trace (sparsity patterns, index maps); runs while tracing.
    - ``init(ctx, theta, c, M0 (S, P) | None, key | None) -> Trace``: the trace at
      ``t = 0``; ``M0 = d c_0 / d theta`` when the initial carry depends on the
      parameters (``None``: zero influence).
    - ``update(ctx, theta, c_{t-1}, x_t, trace_{t-1}, key | None) -> trace_t``: one
      step of the recursion (``M_{t-1} -> M_t``).
    - the gradient of ``L_t``, by one of:

      - ``history(ctx, trace_{t-1}, g_c (S,), g_y) -> (P,)``: the part of
        ``dL_t/dtheta`` that flows through ``c_{t-1}`` (``g_c M_{t-1}``, exactly or
        approximately); the driver adds the immediate gradient (``c_{t-1}`` held
        fixed). Methods defined on the incoming carry use it (RTRL, UORO).
      - ``current(ctx, trace_t, g_y) -> (P,) | None``: the whole ``dL_t/dtheta``
        from the *updated* trace, for methods defined with ``delta_t = dL_t/dc_t`` on
        the new carry (SnAp-1, RFLO). ``None`` falls back to ``history``.

      At least one of them is given (checked by :func:`method_step`).
    - ``needs_key``: the method draws random numbers (UORO); ``init`` and ``update``
      then get keys, and every ``grad_fn`` requires ``key``.

    :func:`forward_grad_fn` turns a method into the common offline ``grad_fn``;
    :func:`jaxrnn.grad.online` into an online learner.
    """

    prepare: Callable
    init: Callable
    update: Callable
    history: Callable | None = None
    current: Callable | None = None
    needs_key: bool = False


Method = ForwardMethod  # the former private name


def method_step(
    method: ForwardMethod, ctx, fc: FlatCell, step_loss, theta, head, c, trace, x, tgt, key
):
    """One step of a forward-mode method at fixed ``theta``.

    Returns ``(c_new, trace_new, loss_t, g_cell (P,), g_head)``.
    """
    (c_new, y), vjp = jax.vjp(lambda th, cc: fc.f(th, cc, x), theta, c)
    loss, (g_head, g_y) = jax.value_and_grad(step_loss, argnums=(0, 1))(head, y, tgt)
    trace_new = method.update(ctx, theta, c, x, trace, key)
    g = None if method.current is None else method.current(ctx, trace_new, g_y)
    if g is None:
        if method.history is None:
            raise ValueError(
                "this forward method defines neither history nor a current gradient "
                "for this cell (ForwardMethod needs one of them)"
            )
        g_imm, g_c = vjp((jnp.zeros_like(c_new), g_y))
        g = g_imm + method.history(ctx, trace, g_c, g_y)
    return c_new, trace_new, loss, g, g_head


def forward_grad_fn(cell: Cell, step_loss: StepLoss, method: ForwardMethod) -> GradFn:
    """Build the offline ``grad_fn`` of a forward-mode method (parameters frozen)."""

    @jax.jit
    def gradient(params, xs, targets, carry0, mask, key):
        cell_params, head = params
        from_init = carry0 is None
        carry = cell.initial_carry(cell_params) if from_init else carry0
        fc, theta, c = flat_cell(cell, cell_params, carry)
        ctx = method.prepare(cell, fc, theta, c, xs[0])
        M0 = initial_influence(cell, fc, theta) if from_init else None
        T = xs.shape[0]
        if method.needs_key:
            k0, key = jax.random.split(key)
            keys = jax.random.split(key, T)
        else:
            k0, keys = None, None
        trace = method.init(ctx, theta, c, M0, k0)

        def step(state, inp):  # the method's step: the carry holds the trace
            c, trace, g_acc, h_acc, l_acc = state
            x, tgt, k = inp
            c, trace, loss, g, gh = method_step(
                method, ctx, fc, step_loss, theta, head, c, trace, x, tgt, k
            )
            return (c, trace, g_acc + g, tree_add(h_acc, gh), l_acc + loss), None

        loss0 = jax.eval_shape(
            step_loss, head, jax.eval_shape(fc.f, theta, c, xs[0])[1], _index(targets, 0)
        )
        state = (
            c,
            trace,
            jnp.zeros_like(theta),
            zeros_like_tree(head),
            jnp.zeros(loss0.shape, loss0.dtype),
        )
        (_, _, g, gh, loss), _ = loop(step, state, (xs, targets, keys), mask=mask)
        return loss, (fc.unravel_params(g), gh)

    def grad_fn(params, xs, targets, carry0=None, *, mask=None, key=None):
        T = check_sequence_args(cell, params, xs, targets, carry0, mask)
        if method.needs_key and key is None:
            raise ValueError("this method is stochastic: pass key=jax.random.key(...)")
        return gradient(params, xs, targets, carry0, as_mask(mask, T), key)

    grad_fn.__doc__ = GRAD_FN_DOC

    return grad_fn


def _index(tree, i):
    return jax.tree_util.tree_map(lambda a: a[i], tree)
