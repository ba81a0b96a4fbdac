"""The types every stage of jaxrnn shares: :class:`Cell` and :class:`Layer`.

A *cell* is one recurrent step for one example; a *layer* runs over a whole sequence
for one example. Both are NamedTuples of pure functions built by factories, in the style
of ``optax.GradientTransformation``: nothing is stored in them but configuration, and
parameters and state are ordinary pytrees passed in and out.

Batching is always ``jax.vmap`` of these per-example functions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import jax

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

    A user-defined cell only needs the first three fields::

        cell = jaxrnn.Cell(init, initial_carry, step)
    """

    init: InitFn | Callable[[PRNGKey], Params]
    initial_carry: InitialCarryFn | Callable[[Params], Carry]
    step: StepFn | Callable[[Params, Carry, Array], tuple[Carry, Array]]
    input_size: int | None = None
    output_size: int | None = None
    diagonal: bool | int = False
    projection: Projection | None = None
    sequence: SequenceFn | Callable[..., tuple[Carry, Array]] | None = None


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
    """

    init: InitFn | Callable[[PRNGKey], Params]
    initial_carry: InitialCarryFn | Callable[[Params], Carry]
    apply: ApplyFn | Callable[..., tuple[Carry, Array]]
    input_size: int | None = None
    output_size: int | None = None
