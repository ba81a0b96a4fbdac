r"""Parameter and FLOP counts of cells, layers and functions.

- :func:`count_params`: the number of scalars in a parameter pytree (or in the
  parameters a :class:`~jaxrnn.Cell`, :class:`~jaxrnn.Layer` or :mod:`jaxrnn.nn` layer
  initialises, found with ``jax.eval_shape``: nothing is computed).
- :func:`count_flops`: floating-point operations read off the ``jaxpr`` (before XLA
  fuses anything), with these rules:

  - ``dot_general``: ``2 * prod(output shape) * prod(contracted sizes)`` (a
    multiply-add is 2 FLOPs), so a matrix-vector product ``(M, K) @ (K,)`` is ``2MK``;
  - element-wise arithmetic and transcendental functions with a floating output
    (``add``, ``mul``, ``tanh``, ``logistic``, ``exp``, ``sqrt``, ...): 1 per element;
  - reductions (``reduce_sum``, ``reduce_max``, ...): ``input size - output size``;
  - data movement, comparisons, selections, casts and integer arithmetic (``select_n``,
    ``slice``, ``concatenate``, random bits, ...): 0;
  - ``scan`` bodies times their length, ``cond`` the most expensive branch, nested
    calls (``jit``, ``custom_jvp``, ``checkpoint``) their body; a ``while`` loop has no
    static trip count and raises ``ValueError``.

For a matrix-dominated cell this gives ``2 x (weights)`` plus a few FLOPs per unit per
step: an Elman cell costs ``2H(I + H) + 4H``, a GRU ``6H(I + H) + 17H``, an LSTM
``8H(I + R) + 21H`` (LSTMP: ``+ 2PH``), as their tests check. Sak et al. (2014) state the
LSTMP's cost per step as ``O(N)`` with ``N`` the number of weights; here it is ``2N``
plus the element-wise terms.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from jax.extend import core as jex_core

from jaxrnn.base import Cell, Layer

__all__ = ["count_flops", "count_params"]

_ELEMENTWISE = frozenset(
    """abs acos acosh add asin asinh atan atan2 atanh cbrt cos cosh digamma div erf erf_inv
    erfc exp exp2 expm1 integer_pow lgamma log log1p logistic max min mul neg nextafter pow
    rem round rsqrt sign sin sinh sqrt square sub tan tanh floor ceil""".split()
)
_REDUCTIONS = frozenset(
    "reduce_sum reduce_max reduce_min reduce_prod reduce_and reduce_or argmax argmin".split()
)
_CUMULATIVE = frozenset("cumsum cumprod cummax cummin cumlogsumexp".split())


def _has_init(obj) -> bool:
    return callable(getattr(obj, "init", None))


def count_params(obj: Any) -> int:
    """The number of scalar parameters.

    Args:
      obj: a parameter pytree (``None`` leaves count 0), or anything with an
        ``init(key)`` method (:class:`~jaxrnn.Cell`, :class:`~jaxrnn.Layer`,
        :mod:`jaxrnn.nn` layers, models), whose parameters are sized with
        ``jax.eval_shape`` without being computed.
    """
    if _has_init(obj) and not isinstance(obj, jax.Array):
        obj = jax.eval_shape(obj.init, jax.random.key(0))
    return int(sum(math.prod(jnp.shape(a)) for a in jax.tree_util.tree_leaves(obj)))


def _size(aval) -> int:
    return math.prod(getattr(aval, "shape", ()))


def _is_float(aval) -> bool:
    dtype = getattr(aval, "dtype", None)
    return dtype is not None and jnp.issubdtype(dtype, jnp.inexact)


def _sub_jaxprs(eqn):
    for name in ("jaxpr", "call_jaxpr", "fun_jaxpr"):
        sub = eqn.params.get(name)
        if sub is not None:
            yield sub


def _jaxpr_flops(jaxpr) -> int:
    jaxpr = getattr(jaxpr, "jaxpr", jaxpr)  # ClosedJaxpr -> Jaxpr
    total = 0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        out = eqn.outvars[0].aval if eqn.outvars else None
        if name == "dot_general":
            (lhs_contract, _), _ = eqn.params["dimension_numbers"]
            lhs_shape = eqn.invars[0].aval.shape
            k = math.prod(lhs_shape[d] for d in lhs_contract)
            total += 2 * _size(out) * k
        elif name in _ELEMENTWISE:
            total += _size(out) if _is_float(out) else 0
        elif name in _REDUCTIONS or name in _CUMULATIVE:
            if _is_float(eqn.invars[0].aval):
                n_in = _size(eqn.invars[0].aval)
                total += n_in - _size(out) if name in _REDUCTIONS else n_in
        elif name == "scan":
            total += eqn.params["length"] * _jaxpr_flops(eqn.params["jaxpr"])
        elif name == "cond":
            total += max(_jaxpr_flops(b) for b in eqn.params["branches"])
        elif name == "while":
            raise ValueError("count_flops: a while loop has no static trip count")
        else:
            total += sum(_jaxpr_flops(sub) for sub in _sub_jaxprs(eqn))
    return total


def _flops_of(fn, *args) -> int:
    closed = jax.make_jaxpr(fn)(*args)
    assert isinstance(closed, jex_core.ClosedJaxpr)
    return _jaxpr_flops(closed)


def count_flops(obj: Any, *args, seq_len: int | None = None) -> int:
    """Floating-point operations of one call, counted from the ``jaxpr`` (module doc).

    Args:
      obj: a :class:`~jaxrnn.Cell`: FLOPs of one ``step`` for one example, or of a
        sequence of ``seq_len`` steps (``seq_len`` times as many); a
        :class:`~jaxrnn.Layer`: FLOPs of ``apply`` on one sequence of ``seq_len`` steps
        (required); any other callable: FLOPs of ``obj(*args)`` (arrays or
        ``jax.ShapeDtypeStruct``).
      seq_len: ``T`` for a cell or a layer.

    Shapes come from ``jax.eval_shape(obj.init, key)``; nothing is computed.
    """
    if seq_len is not None and (
        isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1
    ):
        raise ValueError(f"seq_len must be a positive integer, got {seq_len!r}")
    if isinstance(obj, (Cell, Layer)):
        if obj.input_size is None:
            raise ValueError("count_flops needs the cell or layer to declare input_size")
        params = jax.eval_shape(obj.init, jax.random.key(0))
        carry = jax.eval_shape(obj.initial_carry, params)
        leaves = jax.tree_util.tree_leaves(carry)
        dtype = leaves[0].dtype if leaves else jnp.float32
        if isinstance(obj, Cell):
            x = jax.ShapeDtypeStruct((obj.input_size,), dtype)
            per_step = _flops_of(obj.step, params, carry, x)
            return per_step * (seq_len or 1)
        if seq_len is None:
            raise ValueError("count_flops of a layer needs seq_len")
        xs = jax.ShapeDtypeStruct((seq_len, obj.input_size), dtype)
        return _flops_of(lambda p, x: obj.apply(p, x), params, xs)
    if not callable(obj):
        raise ValueError(f"obj must be a Cell, a Layer or a callable, got {type(obj).__name__}")
    return _flops_of(obj, *args)
