"""Helpers shared by the built-in cell factories (validation, gated weight creation)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxrnn.checks import (  # noqa: F401 - the cells' checks, one copy in jaxrnn.checks
    check_cell,
    check_finite,
    check_float_dtype,
    check_positive_int,
    check_proj_size,
    check_rate,
)
from jaxrnn.initializers import Initializer, pytorch_default

_NONLINEARITIES = {"tanh": jnp.tanh, "relu": jax.nn.relu}


def nonlinearity_fn(nonlinearity: str):
    """The activation named ``"tanh"`` or ``"relu"``; ``ValueError`` otherwise."""
    if nonlinearity not in _NONLINEARITIES:
        raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    return _NONLINEARITIES[nonlinearity]


def gated_weights(
    key: jax.Array,
    *,
    gates: int,
    input_size: int,
    hidden_size: int,
    recurrent_size: int,
    bias: bool,
    dtype,
    input_init: Initializer | None,
    recurrent_init: Initializer | None,
    bias_init: Initializer | None,
):
    """Draw ``w_ih (G*H, I)``, ``w_hh (G*H, R)`` and, if ``bias``, ``b_ih``, ``b_hh (G*H,)``.

    Every tensor defaults to PyTorch's ``U(-1/sqrt(H), 1/sqrt(H))``. Returns a dict.
    """
    default = pytorch_default(hidden_size)
    k_ih, k_hh, k_bi, k_bh = jax.random.split(key, 4)
    rows = gates * hidden_size
    out = {
        "w_ih": (input_init or default)(k_ih, (rows, input_size), dtype),
        "w_hh": (recurrent_init or default)(k_hh, (rows, recurrent_size), dtype),
        "b_ih": None,
        "b_hh": None,
    }
    if bias:
        out["b_ih"] = (bias_init or default)(k_bi, (rows,), dtype)
        out["b_hh"] = (bias_init or default)(k_bh, (rows,), dtype)
    return out


def affine(w_ih, b_ih, w_hh, b_hh, x, h):
    """``W_ih x + b_ih`` and ``W_hh h + b_hh`` (biases may be ``None``)."""
    gi = w_ih @ x
    gh = w_hh @ h
    if b_ih is not None:
        gi = gi + b_ih
    if b_hh is not None:
        gh = gh + b_hh
    return gi, gh


def check_forget_bias(forget_bias: object, bias: bool, name: str = "forget_bias") -> float | None:
    """A gate's bias option (``name``): ``None`` or a finite number, and only with
    ``bias=True``; ``ValueError`` otherwise."""
    if forget_bias is None:
        return None
    forget_bias = check_finite(name, forget_bias)
    if not bias:
        raise ValueError(f"{name} needs bias=True")
    return forget_bias


def set_forget_bias(w: dict, block: slice, forget_bias: float | None) -> dict:
    """Store the effective bias of a gate (the forget gate's, or another's) in
    ``b_ih[block]`` (and 0 in ``b_hh[block]``)."""
    if forget_bias is not None:
        w["b_ih"] = w["b_ih"].at[block].set(forget_bias)
        w["b_hh"] = w["b_hh"].at[block].set(0.0)
    return w


def carry_field(carry, field: str, wrapper: str):
    """``(get, set)`` for the part of a carry a regulariser acts on.

    ``field`` is ``"h"`` or ``"c"``: an array carry is its own ``h``; a NamedTuple carry
    with a field of that name (``LSTMCarry``, ``ClockworkCarry``) gives that field.
    Raises ``ValueError`` (naming ``wrapper``) for any other carry.
    """
    if isinstance(carry, jax.Array | jax.ShapeDtypeStruct) and field == "h":
        return (lambda c: c), (lambda c, v: v)
    if hasattr(carry, "_fields") and field in carry._fields:
        return (lambda c: getattr(c, field)), (lambda c, v: c._replace(**{field: v}))
    raise ValueError(
        f"{wrapper} needs a cell whose carry is an array or a NamedTuple with a {field!r} "
        f"field, got {type(carry).__name__} (wrap each layer of a stack separately)"
    )
