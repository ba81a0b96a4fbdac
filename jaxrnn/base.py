"""The types every stage of jaxrnn shares: :class:`Cell` and :class:`Layer`.

A *cell* is one recurrent step for one example; a *layer* runs over a whole sequence
for one example. Both are NamedTuples of pure functions built by factories, in the style
of ``optax.GradientTransformation``: nothing is stored in them but configuration, and
parameters and state are ordinary pytrees passed in and out.

Batching is always ``jax.vmap`` of these per-example functions.
"""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp

from jaxrnn.checks import check_tree, shape_str

Array = jax.Array
PRNGKey = jax.Array
Params = Any  # a pytree: one NamedTuple per cell type, tuples for composites
Carry = Any  # a pytree: an array (RNN, GRU) or a NamedTuple such as LSTMCarry(h, c)


class InitFn(Protocol):
    def __call__(self, key: PRNGKey) -> Params: ...


class InitialCarryFn(Protocol):
    def __call__(self, params: Params) -> Carry: ...


class StepFn(Protocol):
    def __call__(self, params: Params, carry: Carry, x: Array) -> tuple[Carry, Array]: ...


class Projection(NamedTuple):
    """An input projection a cell offers to the engine (optional ``Cell.projection``).

    ``project(params, x (I,)) -> u`` and ``step(params, carry, u) -> (carry, y)`` with
    ``cell.step(params, carry, x) == step(params, carry, project(params, x))``; the
    engine may then run ``project`` over all steps at once (one GEMM) before the loop.
    """

    project: Callable[[Params, Array], Array]
    step: Callable[[Params, Carry, Array], tuple[Carry, Array]]


class SequenceFn(Protocol):
    def __call__(
        self,
        params: Params,
        xs: Array,
        carry: Carry,
        *,
        mask: Array | None = None,
        reset: Array | None = None,
        reset_carry: Carry | None = None,
        reverse: bool = False,
        unroll: int | bool = 1,
    ) -> tuple[Carry, Array]: ...


class Config:
    """What a cell or layer is: the factory that built it and the arguments it got.

    Every built-in factory records itself (:func:`configured`), so a
    :class:`Cell` or :class:`Layer` describes itself without being probed:

    - ``kind``: the factory's name (``"lstm"``, ``"gru"``, ``"zoneout"``, ``"stack"``, ...);
    - ``options``: every argument by name, defaults filled in (a read-only mapping);
    - ``build()``: calls the factory again with the same arguments.

    Pickling uses it: a built-in cell or layer pickles as its factory and arguments
    (closures cannot be pickled) and unpickles to a new object computing the same
    function. Compared and hashed by identity, like the closures next to it.
    """

    __slots__ = ("args", "built", "factory", "kind", "kwargs", "options")

    def __init__(self, kind: str, factory: Callable, args: tuple, kwargs: dict, options, built):
        self.kind = kind
        self.factory = factory
        self.args = args
        self.kwargs = kwargs
        self.options = types.MappingProxyType(dict(options))
        self.built = built  # the fields the factory returned, to detect a later _replace

    def build(self):
        """A new object from the same factory and arguments."""
        return self.factory(*self.args, **self.kwargs)

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"Config({self.kind}: {opts})"


def _rebuild(factory: Callable, args: tuple, kwargs: dict):
    return factory(*args, **kwargs)


def _reduce(obj):
    """Pickle a cell or layer by its recipe when it is exactly what its factory built;
    otherwise field by field (which works for module-level functions)."""
    cfg = obj.config
    if cfg is not None and all(a is b for a, b in zip(obj[:-1], cfg.built, strict=True)):
        return _rebuild, (cfg.factory, cfg.args, cfg.kwargs)
    return type(obj), (*obj[:-1], None)


class Cell(NamedTuple):
    """One recurrent step for one example: ``step(params, carry, x) -> (carry, y)``.

    Attributes:
      init: ``key -> params``.
      initial_carry: ``params -> carry`` (zeros for the built-in cells).
      step: ``(params, carry, x) -> (carry, y)`` with ``x`` of shape ``(input_size,)``
        and ``y`` of shape ``(output_size,)``. Pure; knows nothing of batch or time.
      input_size: width of ``x`` (``None`` when the cell does not declare it; then
        inputs are not validated).
      output_size: width of ``y``.
      diagonal: ``True`` when the cell declares an element-wise recurrence: every
        parameter entry immediately affects one unit and ``d carry_t / d carry_{t-1}``
        is diagonal; an integer ``k > 1`` when each unit has ``k`` state variables
        (``d carry_t / d carry_{t-1}`` block-diagonal with ``k x k`` blocks, e.g. the
        LRU's complex state as ``(re, im)``). Gradient engines use it for exact RTRL
        in O(k params) per step; the declaration is checked by
        ``jaxrnn.grad.check_diagonal``.
      projection: an optional :class:`Projection` (input projection the engine may
        hoist out of the loop).
      sequence: an optional whole-sequence implementation
        ``sequence(params, xs (T, I), carry, *, mask, reset, reset_carry, reverse,
        unroll) -> (carry, ys)``, equal to scanning ``step`` with the engine's
        validity rules (:mod:`jaxrnn.engine`; ``reset`` is already in processing
        order and restricted to valid steps, masked inputs are already zero). The
        engine uses it when present: the fused backward of the built-in cells, the
        parallel scans of linear recurrences.
      sequence_pair: an optional implementation of both directions of a bidirectional
        layer at once, ``sequence_pair(params, backward_params, xs (T, I), carry,
        backward_carry, *, backward, unroll, concat) -> ((carry, backward_carry),
        ys)`` with this cell reading ``xs`` forward and the cell ``backward`` reading
        it in reverse; ``ys`` is the pair ``(ys, backward_ys)``, or with ``concat`` the
        two concatenated on their last axis. ``None`` where it does not apply to that
        pair (the engine then runs the two directions one after the other). The engine
        uses it for sequences without ``mask`` or ``reset``
        (:func:`jaxrnn.engine.run_pair`): the built-in LSTM and GRU run both directions
        in one oneDNN call, which writes the concatenated outputs as they are.
      reset: an optional ``(params, carry) -> carry``: the carry an episode starts
        from when a ``reset`` flag replaces ``carry`` (default: ``initial_carry(params)``,
        see :meth:`restart`). Wrappers whose carry holds a random key (dropout, zoneout)
        use it to restart the wrapped cell's state and keep the key. The engine runs
        ``step`` (not ``sequence``) for a cell with ``reset`` when resets are given.
      config: a :class:`Config` (kind and static options) set by the built-in
        factories; ``None`` for a user-defined cell.

    A user-defined cell only needs the first three fields::

        cell = jaxrnn.Cell(init, initial_carry, step)

    The ``step`` of a built-in cell checks, in Python when it is traced (no cost per
    step), that ``params`` have the cell's structure and shapes, that ``carry`` has
    the structure, shapes and dtypes of ``initial_carry(params)`` and that ``x`` has
    shape ``(input_size,)``, raising ``ValueError`` naming the argument.
    """

    init: InitFn | Callable[[PRNGKey], Params]
    initial_carry: InitialCarryFn | Callable[[Params], Carry]
    step: StepFn | Callable[[Params, Carry, Array], tuple[Carry, Array]]
    input_size: int | None = None
    output_size: int | None = None
    diagonal: bool | int = False
    projection: Projection | None = None
    sequence: SequenceFn | Callable[..., tuple[Carry, Array]] | None = None
    sequence_pair: Callable[..., tuple[tuple[Carry, Carry], tuple[Array, Array]] | None] | None = (
        None
    )
    reset: Callable[[Params, Carry], Carry] | None = None
    config: Config | None = None

    def restart(self, params: Params, carry: Carry) -> Carry:
        """The carry that replaces ``carry`` at the start of an episode: ``reset(params,
        carry)`` when the cell defines it, else ``initial_carry(params)``."""
        if self.reset is None:
            return self.initial_carry(params)
        return self.reset(params, carry)

    def __reduce__(self):
        return _reduce(self)


class ApplyFn(Protocol):
    def __call__(
        self,
        params: Params,
        xs: Array,
        carry: Carry | None = None,
        *,
        length: Array | int | None = None,
        mask: Array | None = None,
        reset: Array | None = None,
        key: PRNGKey | None = None,
    ) -> tuple[Carry, Array]: ...


class Layer(NamedTuple):
    """A recurrent layer over one whole sequence of one example.

    Attributes:
      init: ``key -> params``.
      initial_carry: ``params -> carry``.
      apply: ``(params, xs, carry=None, *, length=None, mask=None, reset=None,
        key=None) -> (final_carry, ys)`` with ``xs (T, input_size)`` and
        ``ys (T, output_size)``. ``length`` (an integer in ``[1, T]``) marks a valid
        prefix and ``mask (T,)`` the valid steps: the carry freezes on the others and
        their outputs are zero (see :mod:`jaxrnn.engine`). ``reset (T,)`` restarts the carry from
        ``initial_carry`` before the steps where it is true. ``key`` enables dropout
        (``None``: deterministic, like ``torch`` in eval mode).
      input_size, output_size: widths of ``xs`` and ``ys``.
      config: a :class:`Config` set by the built-in layer factories, else ``None``.
    """

    init: InitFn | Callable[[PRNGKey], Params]
    initial_carry: InitialCarryFn | Callable[[Params], Carry]
    apply: ApplyFn | Callable[..., tuple[Carry, Array]]
    input_size: int | None = None
    output_size: int | None = None
    config: Config | None = None

    def __reduce__(self):
        return _reduce(self)


# ------------------------------------------------------------------- self-description


def _abstract(tree):
    return jax.tree_util.tree_map(
        lambda a: jax.ShapeDtypeStruct(
            jnp.shape(a), getattr(a, "dtype", None) or jnp.result_type(a)
        ),
        tree,
    )


def _checked_step(cell: Cell, kind: str):
    """``cell.step`` preceded by Python checks of its arguments (run when traced)."""
    step = cell.step
    cache: dict = {}

    def params_template():
        if "params" not in cache:
            cache["params"] = jax.eval_shape(lambda: cell.init(jax.random.key(0)))
        return cache["params"]

    def carry_template(params):
        leaves, treedef = jax.tree_util.tree_flatten(params)
        key = (treedef, tuple((jnp.shape(a), jnp.result_type(a)) for a in leaves))
        if key not in cache:
            cache[key] = jax.eval_shape(cell.initial_carry, _abstract(params))
        return cache[key]

    @functools.wraps(step)
    def checked(params, carry, x):
        check_tree("params", params, params_template(), dtypes=False, what=f"{kind} params")
        check_tree("carry", carry, carry_template(params), what=f"the {kind} carry")
        if cell.input_size is not None:
            shape = getattr(x, "shape", None)
            if shape is None or tuple(shape) != (cell.input_size,):
                got = type(x).__name__ if shape is None else shape_str(shape)
                raise ValueError(
                    f"x must have shape ({cell.input_size},) (one example, one step of "
                    f"{kind}; batch with jax.vmap), got {got}"
                )
            if not jnp.issubdtype(x.dtype, jnp.floating):
                raise ValueError(f"x must have a floating dtype, got {x.dtype}")
        return step(params, carry, x)

    return checked


def configured(kind: str) -> Callable[[Callable], Callable]:
    """Decorate a factory of :class:`Cell` or :class:`Layer` values so that what it
    returns describes itself (``.config``: a :class:`Config` with ``kind`` and the
    arguments) and pickles by recipe; a cell's ``step`` also checks its arguments
    (see :class:`Cell`). Costs nothing per step: the checks run when ``step`` is traced.
    """

    def decorate(factory: Callable) -> Callable:
        signature = inspect.signature(factory)

        @functools.wraps(factory)
        def build(*args, **kwargs):
            obj = factory(*args, **kwargs)
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            if isinstance(obj, Cell):
                obj = obj._replace(step=_checked_step(obj, kind))
            cfg = Config(kind, build, bound.args, bound.kwargs, bound.arguments, tuple(obj)[:-1])
            return obj._replace(config=cfg)

        return build

    return decorate


def tree_select(pred, on_true, on_false):
    """``jnp.where(pred, a, b)`` leaf by leaf over two pytrees of the same structure (the
    engine's validity selects, the fused path's resets, the gradient methods' masks)."""
    return jax.tree_util.tree_map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)
