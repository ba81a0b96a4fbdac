r"""The recurrence engine: the one place that runs a cell over time.

Everything in jaxrnn that runs a :class:`~jaxrnn.Cell` over a sequence (the layers of
:mod:`jaxrnn.sequence` and :mod:`jaxrnn.nn`, BPTT, truncated and checkpointed BPTT,
the forward-mode gradient methods, the diagnostics, the online learners, sampling)
calls :func:`run`; :func:`scan` is its public, validated form (``jaxrnn.scan``).

For one example ``xs (T, ...)`` and ``t = 0 .. T-1`` (``T-1 .. 0`` with ``reverse``)::

    if reset[t]:  carry = cell.restart(params, carry)    # an episode starts here
    new, y_t = cell.step(params, carry, xs[t])
    carry = new if mask[t] else carry                    # invalid steps change nothing
    y_t   = y_t if mask[t] else 0

**Validity**, one vocabulary for the whole library:

- ``mask (T,)`` bool: the steps that count. A step with ``mask[t] = False`` leaves the
  carry unchanged, outputs zeros, ignores its reset, and its input never reaches a
  value or a gradient (it is replaced by zeros before any arithmetic, so NaN or Inf
  in padding is inert).
- ``length``: a valid prefix, ``mask = arange(T) < length`` (:func:`length_mask`).
  With ``reverse`` the valid prefix is read backwards (``L-1, ..., 0``) and the
  padding stays at the end, as with PyTorch's packed sequences.
- ``reset (T,)`` bool: ``reset[t]`` marks the start of an episode at ``t``. Forward,
  the carry is replaced just before step ``t``; in reverse just after step ``t``
  (``t-1`` comes next), so no information crosses the boundary either way.

**Paths**, chosen by the engine; all equal to scanning ``step`` (tests say so):

1. ``cell.sequence`` (a whole-sequence implementation, e.g. the fused forward and
   backward of the built-in ``rnn``, ``gru``, ``lstm``; see :mod:`jaxrnn.cells._fused`)
   when the cell offers one and ``xs`` is an array.
2. Otherwise ``jax.lax.scan`` over ``cell.step``; with ``hoist=True`` and a cell that
   offers ``cell.projection``, the input projection runs once over all steps (one
   GEMM) and the loop runs ``projection.step``. The default hoists on accelerators
   only: on the 2-core CPU this project is measured on, a hoisted projection was
   slower than the per-step product (``benchmarks/README.md``).

No selects are emitted when neither ``mask`` nor ``reset`` is given.

The two directions of a bidirectional layer go through :func:`run_pair`
(:func:`scan_pair`): one ``cell.sequence_pair`` call where the cell offers one that
applies (the built-in LSTM and GRU on oneDNN), else :func:`run` twice.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn.base import Array, Carry, Cell, Params, tree_select
from jaxrnn.checks import check_tree

__all__ = [
    "check_carry",
    "check_flags",
    "check_inputs",
    "check_length",
    "check_length_values",
    "check_params",
    "checked",
    "inert",
    "length_mask",
    "loop",
    "run",
    "run_pair",
    "scan",
    "scan_pair",
    "unchecked",
]


# ----------------------------------------------------------------------------- checks

# Validation happens in Python on static shapes and dtypes, before tracing. Values that
# are traced (a ``length`` or ``mask`` computed under ``jit``) cannot be read there: by
# default they are trusted (unchecked, no cost). Inside :func:`checked` the same checks
# are emitted as ``jax.experimental.checkify`` checks on the traced values.
_CHECKED: contextvars.ContextVar[bool] = contextvars.ContextVar("jaxrnn_checked", default=False)


def checked(fn: Callable) -> Callable:
    """``fn`` with the checks of traced lengths and masks switched on.

    Returns ``wrapped(*args, **kwargs) -> (error, out)`` as
    ``jax.experimental.checkify.checkify`` does; ``error.throw()`` raises
    ``JaxRuntimeError`` naming the bad value (a ``length`` outside ``[1, T]``, a
    ``mask`` or ``reset`` with values other than 0/1) and ``error.get()`` is ``None``
    when all is well. ``wrapped`` may itself be jitted::

        err, (output, h_n) = jax.jit(jaxrnn.engine.checked(gru.apply))(p, x, lengths=n)
        err.throw()

    Without it (the default) traced values are not checked: a length outside
    ``[1, T]`` is clipped by the mask arithmetic (0 valid steps, or all ``T``) and a
    mask value other than 0 counts as 1. Concrete values are always checked, in Python.
    """
    from jax.experimental import checkify

    inner = checkify.checkify(fn, errors=checkify.user_checks)

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        token = _CHECKED.set(True)
        try:
            return inner(*args, **kwargs)
        finally:
            _CHECKED.reset(token)

    return wrapped


@contextlib.contextmanager
def unchecked():
    """Trace without the checks of :func:`checked` (around calls of cached jitted
    functions, whose compiled form must not depend on the mode)."""
    token = _CHECKED.set(False)
    try:
        yield
    finally:
        _CHECKED.reset(token)


def _traced_check(pred: Callable[[], Array], message: str, **values) -> None:
    """``checkify.check(pred(), ...)`` inside :func:`checked`; nothing at all (not even
    the comparison) outside it."""
    if _CHECKED.get():
        from jax.experimental import checkify

        checkify.check(pred(), message, **values)


def _is_concrete(x) -> bool:
    return not any(isinstance(a, jax.core.Tracer) for a in jax.tree_util.tree_leaves(x))


def _as_array(value, name: str):
    """Lists and tuples (of numbers or of traced scalars) as one array."""
    if isinstance(value, (list, tuple)):
        try:
            return jnp.asarray(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be an array of numbers, got {value!r}") from None
    return value


def check_inputs(xs, input_size: int | None, name: str = "xs") -> None:
    """Raise ``ValueError`` unless ``xs`` is a floating ``(T, input_size)`` array."""
    shape = getattr(xs, "shape", None)
    dtype = getattr(xs, "dtype", None)
    if shape is None or dtype is None:
        raise ValueError(f"{name} must be an array of shape (T, {input_size}), got {type(xs)}")
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"{name} must have a floating dtype, got {dtype}")
    if len(shape) != 2:
        raise ValueError(f"{name} must have shape (T, {input_size}), got {tuple(shape)}")
    if shape[0] < 1:
        raise ValueError(f"{name} must have at least one time step, got shape {tuple(shape)}")
    if input_size is not None and shape[1] != input_size:
        raise ValueError(f"{name} must have shape (T, {input_size}), got {tuple(shape)}")


def check_carry(carry, expected, name: str = "carry") -> None:
    """Raise ``ValueError`` unless ``carry`` has the structure, shapes and dtypes of
    ``expected`` (e.g. ``jax.eval_shape(cell.initial_carry, params)``)."""
    check_tree(name, carry, expected, what="a carry")


@functools.lru_cache(maxsize=512)
def _params_template_cached(cell: Cell):
    return _params_template(cell)


def _params_template(cell: Cell):
    try:
        return jax.eval_shape(lambda: cell.init(jax.random.key(0)))  # nothing leaks into a trace
    except Exception:  # an init that cannot be traced: nothing to compare against
        return None


def check_params(cell: Cell, params, name: str = "params") -> None:
    """Raise ``ValueError`` unless ``params`` has the structure and shapes of
    ``cell.init``'s (dtypes may differ: parameters may be cast)."""
    template = _params_template_cached(cell) if _hashable(cell) else _params_template(cell)
    if template is not None:
        check_tree(name, params, template, dtypes=False, what="the cell's params")


def check_length(length, T: int, name: str = "length"):
    """A scalar integer ``length`` in ``[1, T]``, as an array; ``ValueError`` otherwise
    (a traced value is checked only inside :func:`checked`)."""
    length = _as_array(length, name)
    if jnp.ndim(length) != 0:
        raise ValueError(
            f"{name} must be a scalar integer in [1, {T}], got shape {jnp.shape(length)}"
        )
    if not jnp.issubdtype(jnp.result_type(length), jnp.integer):
        raise ValueError(f"{name} must be an integer, got dtype {jnp.result_type(length)}")
    return check_length_values(length, T, name)


def check_length_values(lengths, T: int, name: str = "lengths"):
    """Every entry of integer ``lengths`` in ``[1, T]``: in Python when concrete, with
    ``checkify`` inside :func:`checked` when traced; returns ``lengths``."""
    if _is_concrete(lengths):
        v = np.asarray(lengths)
        if v.size and (v.min() < 1 or v.max() > T):
            shown = v.tolist() if v.size <= 16 else f"values from {v.min()} to {v.max()}"
            raise ValueError(f"{name} must be in [1, {T}] (T = {T}), got {shown}")
    else:
        ok = lambda: jnp.all((lengths >= 1) & (lengths <= T))  # noqa: E731
        _traced_check(ok, f"{name} must be in [1, {T}], got {{v}}", v=lengths)
    return lengths


def check_flags(name: str, flags, T: int):
    """``flags (T,)`` boolean or 0/1 numbers (a ``mask`` or ``reset``); returns them as
    an array. ``ValueError`` otherwise (traced values: inside :func:`checked` only)."""
    flags = _as_array(flags, name)
    if jnp.shape(flags) != (T,):
        raise ValueError(
            f"{name} must have shape ({T},) (one flag per step), got {jnp.shape(flags)}"
        )
    dtype = jnp.result_type(flags)
    if not (jnp.issubdtype(dtype, jnp.bool_) or jnp.issubdtype(dtype, jnp.number)):
        raise ValueError(f"{name} must be boolean (or 0/1), got dtype {dtype}")
    if not jnp.issubdtype(dtype, jnp.bool_):
        if _is_concrete(flags):
            v = np.asarray(flags)
            if not np.all((v == 0) | (v == 1)):
                raise ValueError(f"{name} must contain only 0/1 (or False/True)")
        else:
            ok = lambda: jnp.all((flags == 0) | (flags == 1))  # noqa: E731
            _traced_check(ok, f"{name} must contain only 0/1 (or False/True), got {{v}}", v=flags)
    return flags


def _check_dtype(xs, carry) -> None:
    """Inputs must share the carry's floating dtype (a float64 ``xs`` against float32
    parameters would promote the carry inside the scan)."""
    dtypes = {jnp.result_type(a) for a in jax.tree_util.tree_leaves(carry)}
    if len(dtypes) == 1:
        (dtype,) = dtypes
        if jnp.issubdtype(dtype, jnp.floating) and jnp.result_type(xs) != dtype:
            raise ValueError(
                f"xs must have dtype {dtype} (the dtype of the carry and parameters), "
                f"got {jnp.result_type(xs)}; cast xs, or build the cell with a matching dtype"
            )


# --------------------------------------------------------------------------- validity


def length_mask(length, T: int) -> Array:
    """``(T,)`` bool: ``t < length`` (any integer dtype; traceable)."""
    steps = jnp.arange(T)
    return steps < jnp.asarray(length).astype(steps.dtype)


def inert(xs, mask):
    """Zero the floating leaves of ``xs (T, ...)`` at invalid steps (``mask[t]`` false),
    before any arithmetic touches them: NaN or Inf in padding never reaches a value or a
    gradient."""

    def zero(a):
        if not jnp.issubdtype(a.dtype, jnp.floating):
            return a
        m = mask.reshape((-1,) + (1,) * (a.ndim - 1))
        return jnp.where(m, a, jnp.zeros_like(a))

    return jax.tree_util.tree_map(zero, xs)


def _resets(reset, mask, reverse: bool):
    """The flags "replace the carry just before processing step t", in processing order.

    Forward that is ``reset[t]``; in reverse the boundary before ``t+1`` is crossed just
    before ``t``, so it is ``reset[t+1]``. A reset belongs to a valid step only.
    """
    reset = jnp.asarray(reset).astype(bool)
    if mask is not None:
        reset = reset & mask
    if reverse:
        reset = jnp.concatenate([reset[1:], jnp.zeros((1,), bool)])
    return reset


# ------------------------------------------------------------------------------- run


def _default_hoist() -> bool:
    return jax.default_backend() != "cpu"


def run(
    cell: Cell,
    params: Params,
    xs,
    carry: Carry,
    *,
    mask: Array | None = None,
    reset: Array | None = None,
    reverse: bool = False,
    unroll: int | bool = 1,
    hoist: bool | None = None,
    fused: bool = True,
) -> tuple[Carry, object]:
    """Run ``cell`` over ``xs`` (see the module docstring); no validation, traceable.

    Args:
      cell: a :class:`~jaxrnn.Cell`.
      params: its parameters.
      xs: ``(T, ...)``: an array, or a pytree of arrays with leading axis ``T`` (the
        step receives one slice; only the ``step`` path takes pytrees).
      carry: the initial carry.
      mask: ``(T,)`` bool or ``None`` (every step valid).
      reset: ``(T,)`` bool or ``None``.
      reverse: process ``T-1, ..., 0``.
      unroll: ``jax.lax.scan``'s ``unroll``.
      hoist: run ``cell.projection`` over all steps before the loop (``None``: on
        accelerators only).
      fused: use ``cell.sequence`` when the cell offers one.

    Returns:
      ``(final_carry, ys)`` with ``ys`` stacked over time.
    """
    reset_carry = None
    if mask is not None:
        mask = jnp.asarray(mask).astype(bool)
        xs = inert(xs, mask)
    if reset is not None:
        reset = _resets(reset, mask, reverse)
        if cell.reset is None:
            reset_carry = cell.initial_carry(params)
        else:
            fused = False  # the restart depends on the carry: only the step path has it
    if fused and cell.sequence is not None and isinstance(xs, jax.Array):
        return cell.sequence(
            params,
            xs,
            carry,
            mask=mask,
            reset=reset,
            reset_carry=reset_carry,
            reverse=reverse,
            unroll=unroll,
        )
    step = cell.step
    if cell.projection is not None and (_default_hoist() if hoist is None else hoist):
        xs = jax.vmap(cell.projection.project, in_axes=(None, 0))(params, xs)
        step = cell.projection.step

    def body(c, inp):
        x, m, r = inp
        if r is not None:
            c = tree_select(r, cell.restart(params, c) if reset_carry is None else reset_carry, c)
        new, y = step(params, c, x)
        if m is not None:
            new = tree_select(m, new, c)
            y = jax.tree_util.tree_map(lambda a: jnp.where(m, a, jnp.zeros_like(a)), y)
        return new, y

    return jax.lax.scan(body, carry, (xs, mask, reset), reverse=reverse, unroll=unroll)


def run_pair(
    forward: Cell,
    params: Params,
    backward: Cell,
    backward_params: Params,
    xs,
    carries: tuple[Carry, Carry],
    *,
    mask: Array | None = None,
    reset: Array | None = None,
    unroll: int | bool = 1,
    hoist: bool | None = None,
    fused: bool = True,
    concat: bool = False,
) -> tuple[tuple[Carry, Carry], object]:
    """The two directions of a bidirectional layer: :func:`run` of ``forward`` over
    ``xs`` and of ``backward`` over ``xs`` with ``reverse=True``; no validation,
    traceable. Returns ``((carry, backward_carry), ys)``: ``ys`` is the pair ``(ys,
    backward_ys)``, or with ``concat`` the two concatenated on their last axis.

    Without ``mask`` or ``reset``, with ``fused`` and an array ``xs``, a cell that offers
    ``sequence_pair`` runs both directions at once when its ``sequence_pair`` applies to
    ``backward`` (the built-in LSTM and GRU on oneDNN: one call, one direction per core);
    otherwise the two directions run one after the other.
    """
    if (
        fused
        and mask is None
        and reset is None
        and forward.sequence_pair is not None
        and isinstance(xs, jax.Array)
    ):
        out = forward.sequence_pair(
            params, backward_params, xs, *carries, backward=backward, unroll=unroll, concat=concat
        )
        if out is not None:
            return out
    kwargs = dict(mask=mask, reset=reset, unroll=unroll, hoist=hoist, fused=fused)
    c0, y0 = run(forward, params, xs, carries[0], **kwargs)
    c1, y1 = run(backward, backward_params, xs, carries[1], reverse=True, **kwargs)
    return (c0, c1), jnp.concatenate([y0, y1], axis=-1) if concat else (y0, y1)


def _no_init(*_):  # pragma: no cover - loop() never initialises its cell
    raise NotImplementedError("a loop step has no init or initial carry")


def loop(step, carry, xs, *, mask: Array | None = None, reverse: bool = False, unroll=1):
    """Run a bare ``step(carry, x) -> (carry, y)`` over ``xs (T, ...)`` with the engine's
    validity rules (:func:`run` without params or resets).

    For what carries more than a cell's state through time: the forward-mode gradient
    methods (carry, influence and accumulated gradients), BPTT's checkpointed segments
    and truncation windows, the diagnostics' perturbed carry, the sampler's fed-back
    tokens.
    """
    cell = Cell(_no_init, _no_init, lambda _, c, x: step(c, x))
    return run(cell, None, xs, carry, mask=mask, reverse=reverse, unroll=unroll)


_run_jit = jax.jit(run, static_argnames=("cell", "reverse", "unroll", "hoist", "fused"))
_run_pair_jit = jax.jit(
    run_pair, static_argnames=("forward", "backward", "unroll", "hoist", "fused", "concat")
)


def _hashable(cell: Cell) -> bool:
    try:
        hash(cell)
    except TypeError:
        return False
    return True


def scan(
    cell: Cell,
    params: Params,
    xs: Array,
    carry: Carry | None = None,
    *,
    length: Array | int | None = None,
    mask: Array | None = None,
    reverse: bool = False,
    reset: Array | None = None,
    unroll: int | bool = 1,
    hoist: bool | None = None,
    fused: bool = True,
) -> tuple[Carry, Array]:
    r"""Run ``cell`` over one sequence: ``(carry, ys)`` (``jaxrnn.scan``).

    For ``t = 0 .. T-1`` (or the valid steps backwards when ``reverse``)::

        carry_t, y_t = cell.step(params, carry_{t-1}, xs[t])

    Args:
      cell: a :class:`~jaxrnn.Cell`.
      params: its parameters.
      xs: inputs ``(T, input_size)``.
      carry: initial carry; ``None`` means ``cell.initial_carry(params)``.
      length: number of valid steps ``L`` in ``[1, T]`` (an int or int scalar array,
        traceable). Steps ``t >= L`` leave the carry unchanged and output zeros, so the
        returned carry is the one after step ``L-1``. ``None`` means ``L = T``.
      mask: ``(T,)`` bool (or 0/1): the valid steps, for gaps that are not a suffix;
        combined with ``length`` when both are given.
      reverse: process the valid steps backwards (``L-1, ..., 0``); outputs stay at
        their original positions and the padding at the end, as with PyTorch's packed
        sequences. The returned carry is the one after step ``0``.
      reset: optional boolean ``(T,)``; ``reset[t]`` marks the start of a new episode
        at ``t``: the carry is replaced by ``cell.restart(params, carry)``
        (``cell.initial_carry(params)`` unless the cell defines ``reset``) just before
        step ``t`` (forward) or just after step ``t`` (``reverse``, where ``t-1`` comes
        next), so no information crosses the boundary in either direction.
      unroll: passed to ``jax.lax.scan`` (``True`` unrolls fully).
      hoist, fused: engine paths (see the module docstring); the results do not
        depend on them.

    Returns:
      ``(carry, ys)`` with ``ys (T, output_size)``.

    Raises:
      ValueError: ``xs`` not ``(T, input_size)`` or of another dtype than the carry,
        ``params`` not the cell's, a ``carry`` of another structure, shape or dtype
        than ``initial_carry(params)``, a bad ``length``, ``mask`` or ``reset`` (in
        Python, before tracing; traced lengths and masks: see :func:`checked`).
    """
    carry = _checked_carry(cell, params, xs, carry)
    mask, reset = _validity(xs.shape[0], length, mask, reset)
    kwargs = dict(mask=mask, reset=reset, reverse=bool(reverse), unroll=unroll)
    kwargs.update(hoist=hoist, fused=fused)
    fn = _run_jit if _hashable(cell) else run
    return fn(cell, params, xs, carry, **kwargs)


def scan_pair(
    forward: Cell,
    params: Params,
    backward: Cell,
    backward_params: Params,
    xs: Array,
    carries: tuple[Carry, Carry] | None = None,
    *,
    length: Array | int | None = None,
    mask: Array | None = None,
    reset: Array | None = None,
    unroll: int | bool = 1,
    hoist: bool | None = None,
    fused: bool = True,
    concat: bool = False,
) -> tuple[tuple[Carry, Carry], object]:
    """Both directions of a bidirectional layer over one sequence: :func:`scan` of
    ``forward`` and :func:`scan` of ``backward`` with ``reverse=True``, on the same
    ``xs``, ``length``, ``mask`` and ``reset``; validated as :func:`scan` validates,
    and run by :func:`run_pair`.

    Returns:
      ``((carry, backward_carry), ys)``: ``ys`` is the pair ``(ys, backward_ys)``, or
      with ``concat`` the two concatenated on their last axis (what a bidirectional
      layer outputs; the built-in LSTM and GRU write it without a copy).
    """
    c0, c1 = (None, None) if carries is None else carries
    c0 = _checked_carry(forward, params, xs, c0)
    c1 = _checked_carry(backward, backward_params, xs, c1)
    mask, reset = _validity(xs.shape[0], length, mask, reset)
    kwargs = dict(mask=mask, reset=reset, unroll=unroll, hoist=hoist, fused=fused, concat=concat)
    fn = _run_pair_jit if _hashable(forward) and _hashable(backward) else run_pair
    return fn(forward, params, backward, backward_params, xs, (c0, c1), **kwargs)


def _checked_carry(cell: Cell, params: Params, xs, carry):
    """:func:`scan`'s checks of ``xs``, ``params`` and ``carry`` for ``cell``; returns
    the carry (``cell.initial_carry(params)`` for ``None``)."""
    check_inputs(xs, cell.input_size)
    check_params(cell, params)
    if carry is None:
        carry = cell.initial_carry(params)
    else:
        check_carry(carry, jax.eval_shape(cell.initial_carry, params))
    _check_dtype(xs, carry)
    return carry


def _validity(T: int, length, mask, reset):
    """:func:`scan`'s checks of ``length``, ``mask`` and ``reset``; returns ``(mask,
    reset)`` with the length folded into the mask."""
    if length is not None:
        length = check_length(length, T)
        lm = length_mask(length, T)
    if mask is not None:
        mask = check_flags("mask", mask, T)
        mask = jnp.asarray(mask).astype(bool)
        mask = mask if length is None else mask & lm
    elif length is not None:
        mask = lm
    if reset is not None:
        reset = check_flags("reset", reset, T)
    return mask, reset
