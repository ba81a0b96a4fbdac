"""Helpers shared by the built-in cell factories (validation, gated weight creation)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxrnn.initializers import Initializer, pytorch_default


def check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


_NONLINEARITIES = {"tanh": jnp.tanh, "relu": jax.nn.relu}


def nonlinearity_fn(nonlinearity: str):
    """The activation named ``"tanh"`` or ``"relu"``; ``ValueError`` otherwise."""
    if nonlinearity not in _NONLINEARITIES:
        raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    return _NONLINEARITIES[nonlinearity]


def check_float_dtype(name: str, dtype) -> jnp.dtype:
    dtype = jnp.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"{name} must be a floating dtype, got {dtype}")
    return dtype


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
