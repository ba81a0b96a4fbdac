"""Shared pieces of the gradient tests: a readout loss, a problem per registered case,
and the BPTT / RTRL functions built once per case (so test files share compilations)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from conftest import CELL_CASES, INPUT_SIZE, case_inputs

from jaxrnn import grad as G

T = 7
OUT = 2


def mse_loss(head, y, target):
    W, b = head
    return 0.5 * jnp.sum((W @ y + b - target) ** 2)


def problem(cell, dtype=jnp.float64, T=T, seed=0, case=None):
    """``((cell_params, head), xs, targets)``; ``case`` supplies structured inputs."""
    k1, k2, k3, k4 = jax.random.split(jax.random.key(seed), 4)
    cp = cell.init(k1)
    if case is not None:
        xs = case_inputs(case, k3, T, dtype)
    else:
        xs = jax.random.normal(k3, (T, cell.input_size or INPUT_SIZE), dtype)
    y = jax.eval_shape(cell.step, cp, cell.initial_carry(cp), xs[0])[1]
    head = (jax.random.normal(k2, (OUT, y.shape[0]), dtype), jnp.zeros((OUT,), dtype))
    targets = jax.random.normal(k4, (T, OUT), dtype)
    return (cp, head), xs, targets


_FNS: dict = {}


def fns(name, dtype=jnp.float64, make=None):
    """``(cell, bptt_fn, rtrl_fn)`` for registered case ``name`` (or ``make()``)."""
    if (name, dtype) not in _FNS:
        cell = make() if make is not None else CELL_CASES[name](dtype)
        _FNS[name, dtype] = (cell, G.bptt(cell, mse_loss), G.rtrl(cell, mse_loss))
    return _FNS[name, dtype]


def case_problem(name, dtype=jnp.float64, T=T, seed=0):
    cell, bptt, rtrl = fns(name, dtype)
    return (cell, bptt, rtrl, *problem(cell, dtype, T, seed, CELL_CASES[name]))


def rel(a, b):
    return float(G.relative_error(a, b))
