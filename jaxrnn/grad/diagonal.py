r"""Exact RTRL in ``O(P)`` per step for element-wise (diagonal) recurrences.

A cell is element-wise (``Cell(..., diagonal=True)``) when (i) every parameter entry
``theta_j`` immediately affects one carry entry ``u(j)`` and (ii) the carry Jacobian
``D_t = d c_t / d c_{t-1}`` is diagonal. Then ``M_t = d c_t / d theta`` has one non-zero
per column, and the compressed influence ``E_j = M_{u(j), j}`` (the shape of the
parameters) obeys, exactly,

.. math::

    E_t = d_t[u] \odot E_{t-1} + i_t, \qquad
    d_t = D_t \mathbf{1} = \mathrm{diag}(D_t), \qquad
    i_t = \mathbf{1}^\top I_t,

    \nabla_\theta L_t = \frac{\partial L_t}{\partial\theta}\Big|_{c_{t-1}}
                       + g_c[u] \odot E_{t-1}, \qquad g_c = \frac{\partial L_t}{\partial c_{t-1}},

with ``d_t`` from one JVP with a ones tangent and ``i_t`` from one VJP with a ones
cotangent (both exact only because of (i) and (ii)). Cost: about one forward and one
backward step, ``O(P)`` time and memory, independent of ``T`` (Zucchet et al. 2023,
LRU; Irie et al. 2024, eLSTM; Javed et al. 2023, columnar networks). Multi-component
units (``k x k`` blocks of ``D_t``) are not supported: declare such cells dense.

The map ``u`` is read from dense Jacobians at random points when the gradient
function is traced (:func:`jaxrnn.grad._common.probe_pattern`), which also verifies
the declaration; :func:`check_diagonal` checks it at given parameters.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from jaxrnn.base import Cell, Params, PRNGKey
from jaxrnn.grad._common import FlatCell, ForwardMethod, probe_pattern

__all__ = ["DiagonalContext", "check_diagonal", "diagonal_method"]


class DiagonalContext(NamedTuple):
    """``units (P,)``: the carry entry ``u(j)`` each parameter entry touches;
    ``valid (P,)``: whether it touches one. The trace is ``E (P,)``."""

    fc: FlatCell
    units: jax.Array
    valid: jax.Array


def check_diagonal(cell: Cell, params: Params, key: PRNGKey, *, draws: int = 3) -> None:
    """Verify that ``cell`` is element-wise at ``params`` with dense Jacobians.

    At ``draws`` random ``(carry, x) ~ N(0, 1)`` it computes ``D = d c'/d c`` (``jacfwd``)
    and ``I = d c'/d theta`` (``jacrev``) of ``cell.step`` and requires ``D`` diagonal
    and at most one non-zero per column of ``I``.

    Raises:
      ValueError: naming the violated condition (a dense GRU fails both).
    """
    carry = cell.initial_carry(params)
    theta, unravel_p = ravel_pytree(params)
    c0, unravel_c = ravel_pytree(carry)
    if cell.input_size is None:
        raise ValueError("check_diagonal needs cell.input_size to draw inputs")

    def f(th, c, x):
        return ravel_pytree(cell.step(unravel_p(th), unravel_c(c), x)[0])[0]

    S = c0.size
    for k in jax.random.split(key, draws):
        kc, kx = jax.random.split(k)
        c = jax.random.normal(kc, (S,), c0.dtype)
        x = jax.random.normal(kx, (cell.input_size,), c0.dtype)
        D = np.asarray(jax.jacfwd(f, argnums=1)(theta, c, x))
        off = np.abs(D[~np.eye(S, dtype=bool)])
        if off.size and off.max() > 0:
            i, j = np.argwhere(np.abs(D) * (1 - np.eye(S)) > 0)[0]
            raise ValueError(
                f"cell is not element-wise: d carry'[{i}] / d carry[{j}] = {D[i, j]:.3g} != 0 "
                "(the carry Jacobian must be diagonal)"
            )
        I = np.asarray(jax.jacrev(f)(theta, c, x))
        nnz = (I != 0).sum(0)
        if nnz.size and nnz.max() > 1:
            j = int(np.argmax(nnz))
            raise ValueError(
                f"cell is not element-wise: parameter entry {j} (raveled) immediately "
                f"affects {int(nnz[j])} carry entries (at most 1 allowed)"
            )


def _prepare(cell, fc, theta, c, x):
    pat = probe_pattern(cell, fc, theta, c, x)
    if pat.K > 1 or not pat.diag_D:
        raise ValueError(
            "cell declares diagonal=True but is not element-wise: "
            + ("its carry Jacobian is not diagonal" if not pat.diag_D else "")
            + (" and " if (not pat.diag_D and pat.K > 1) else "")
            + (f"a parameter touches {pat.K} carry entries" if pat.K > 1 else "")
            + "; build it with diagonal=False or use jaxrnn.grad.rtrl(..., diagonal=False)"
        )
    return DiagonalContext(fc, jnp.asarray(pat.units[0]), jnp.asarray(pat.valid[0]))


def _init(ctx: DiagonalContext, theta, c, M0, key):
    if M0 is None:
        return jnp.zeros_like(theta)
    return jnp.where(ctx.valid, M0[ctx.units, jnp.arange(ctx.fc.P)], jnp.zeros_like(theta))


def _history(ctx: DiagonalContext, E, g_c, g_y):
    return g_c[ctx.units] * E


def _update(ctx: DiagonalContext, theta, c, x, E, key):
    f = ctx.fc.f
    ones = jnp.ones_like(c)
    _, vjp = jax.vjp(lambda th: f(th, c, x)[0], theta)
    (i_t,) = vjp(ones)
    _, d = jax.jvp(lambda cc: f(theta, cc, x)[0], (c,), (ones,))
    return d[ctx.units] * E + i_t


def diagonal_method() -> ForwardMethod:
    """Exact compressed RTRL for element-wise cells (see the module docstring)."""
    return ForwardMethod(prepare=_prepare, init=_init, update=_update, history=_history)
