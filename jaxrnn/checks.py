"""The argument checks every stage of jaxrnn shares (one copy of each).

Each check runs in Python on static values (shapes, dtypes, configuration), before any
tracing, and raises ``ValueError`` (``TypeError`` where the *kind* of object is wrong)
naming the argument and what was expected. Nothing here is called per time step: a
check inside a cell's ``step`` runs once, when the step is traced.

The sequence-level checks (``xs (T, I)``, carries, ``mask``/``reset`` flags,
``length``) live with the engine (:mod:`jaxrnn.engine`), which uses :func:`check_tree`.
"""

from __future__ import annotations

import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "check_bool",
    "check_cell",
    "check_finite",
    "check_float_dtype",
    "check_nonneg_int",
    "check_positive_int",
    "check_probability",
    "check_proj_size",
    "check_rate",
    "check_tree",
    "shape_str",
]


def shape_str(shape) -> str:
    """``(3,)``, ``(2, 5)``: a shape as Python writes a tuple."""
    shape = tuple(shape)
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _is_int(value: object) -> bool:
    return not isinstance(value, (bool, np.bool_)) and isinstance(value, (int, np.integer))


def check_positive_int(name: str, value: object) -> int:
    """``value`` as a Python ``int >= 1`` (NumPy integers accepted); ``ValueError`` else."""
    if not _is_int(value) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_nonneg_int(name: str, value: object) -> int:
    """``value`` as a Python ``int >= 0``; ``ValueError`` otherwise."""
    if not _is_int(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def check_bool(name: str, value: object) -> bool:
    """``value`` as a Python ``bool`` (``numpy.bool_`` accepted); ``ValueError`` else."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be a bool, got {value!r}")
    return bool(value)


def check_finite(name: str, value: object, *, positive: bool = False) -> float:
    """A finite real number (not a bool, not a string); ``positive``: also ``> 0``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or (positive and value <= 0):
        what = "a positive finite number" if positive else "a finite number"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return value


def check_rate(name: str, value: object) -> float:
    """A probability in ``[0, 1)`` (dropout and zoneout rates of a cell wrapper, where a
    rate of 1 would remove the signal for good); ``ValueError`` otherwise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    if not 0 <= value < 1:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)


def check_probability(name: str, value: object) -> float:
    """A probability in ``[0, 1]`` (inter-layer dropout, as ``torch.nn.LSTM`` accepts)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    if not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


def check_float_dtype(name: str, dtype) -> jnp.dtype:
    """``dtype`` as a floating ``jnp.dtype``; ``ValueError`` otherwise."""
    try:
        dtype = jnp.dtype(dtype)
    except TypeError:
        raise ValueError(f"{name} must be a floating dtype, got {dtype!r}") from None
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"{name} must be a floating dtype, got {dtype}")
    return dtype


def check_proj_size(proj_size: object, hidden_size: int) -> int:
    """``0`` (no projection) or ``0 < proj_size < hidden_size``; ``ValueError`` otherwise."""
    proj_size = check_nonneg_int("proj_size", proj_size)
    if proj_size >= hidden_size:
        raise ValueError(
            f"proj_size must be smaller than hidden_size ({hidden_size}), got {proj_size}"
        )
    return proj_size


def check_cell(name: str, cell: object):
    """``cell`` if it is a :class:`~jaxrnn.Cell`; ``ValueError`` otherwise."""
    from jaxrnn.base import Cell  # checks come before base in the import order

    if not isinstance(cell, Cell):
        raise ValueError(f"{name} must be a jaxrnn.Cell, got {type(cell).__name__}")
    return cell


def _describe(tree) -> str:
    def leaf(a):
        return f"{shape_str(jnp.shape(a))} {jnp.result_type(a)}"

    return str(jax.tree_util.tree_map(leaf, tree))


def check_tree(name: str, value, template, *, dtypes: bool = True, what: str = "") -> None:
    """Raise ``ValueError`` unless ``value`` has ``template``'s structure, leaf shapes
    and (with ``dtypes``) leaf dtypes. ``template`` may hold ``jax.ShapeDtypeStruct``
    leaves (from ``jax.eval_shape``). Works on tracers (only static facts are read).

    The message names ``name``, the first leaf that differs (by its path) and the
    expected shapes; ``what`` describes the expected object (e.g. "LSTMParams").
    """
    want = jax.tree_util.tree_structure(template)
    try:
        got = jax.tree_util.tree_structure(value)
    except Exception:  # pragma: no cover - a pytree that cannot be flattened
        got = None
    if want != got:
        kind = what or type(template).__name__
        raise ValueError(
            f"{name} must have the structure of {kind}, {_describe(template)}; "
            f"got {type(value).__name__}: {got}"
        )
    paths = jax.tree_util.tree_leaves_with_path(template)
    for (path, t), v in zip(paths, jax.tree_util.tree_leaves(value)):
        where = f"{name}{jax.tree_util.keystr(path)}"
        if not hasattr(v, "shape") and not isinstance(v, (numbers.Number, np.generic)):
            raise ValueError(f"{where} must be an array, got {type(v).__name__}")
        if jnp.shape(v) != jnp.shape(t):
            raise ValueError(
                f"{where} must have shape {shape_str(jnp.shape(t))}, "
                f"got {shape_str(jnp.shape(v))} (expected {_describe(template)})"
            )
        if dtypes and jnp.result_type(v) != jnp.result_type(t):
            raise ValueError(
                f"{where} must have dtype {jnp.result_type(t)}, got {jnp.result_type(v)} "
                f"(expected {_describe(template)})"
            )
