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
LRU; Irie et al. 2024, eLSTM; Javed et al. 2023, columnar networks).

Units of ``k`` state variables (``Cell(..., diagonal=k)``; the LRU's complex state
stored as ``(re, im)`` has ``k = 2``): ``D_t`` is block-diagonal with one ``k x k``
block per unit and every parameter touches one unit. Then ``E`` has a leading axis of
``k`` (component ``a`` of parameter ``j``'s unit ``b(j)``), and with the unit's block
``D^{(b)}``

.. math::

    E_t[a, j] = \sum_c D^{(b(j))}_{t, ac}\, E_{t-1}[c, j] + I_t[(b(j), a), j],

``k`` JVPs (tangent: ones on component ``c`` of every unit) give the blocks' columns and
``k`` VJPs (cotangent: ones on component ``a``) the immediate influence, so the cost is
``k`` times the element-wise one; ``k = 1`` is the element-wise case above.

The units are read from dense Jacobians at random points when the gradient
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
from jaxrnn.grad._common import FlatCell, ForwardMethod, carry_blocks, probe_pattern

__all__ = ["DiagonalContext", "check_diagonal", "diagonal_method"]


class DiagonalContext(NamedTuple):
    """``blocks (U, k)``: the carry entries of each unit; ``rows (P, k)``: the carry
    entries of the unit each parameter entry touches; ``valid (P,)``: whether it
    touches one. The trace is ``E (k, P)``."""

    fc: FlatCell
    blocks: jax.Array
    rows: jax.Array
    valid: jax.Array


def unit_size(cell: Cell) -> int:
    """The declared number of state variables per unit: ``1`` for ``diagonal=True``
    (or an undeclared cell), ``k`` for ``diagonal=k``."""
    k = cell.diagonal
    return k if isinstance(k, int) and not isinstance(k, bool) and k > 1 else 1


def check_diagonal(cell: Cell, params: Params, key: PRNGKey, *, draws: int = 3) -> None:
    """Verify that ``cell`` is element-wise at ``params`` with dense Jacobians (units of
    ``k`` entries for a cell declared ``diagonal=k``).

    At ``draws`` random ``(carry, x) ~ N(0, 1)`` it computes ``D = d c'/d c`` (``jacfwd``)
    and ``I = d c'/d theta`` (``jacrev``) of ``cell.step`` and requires ``D`` diagonal
    and at most one non-zero per column of ``I`` (``k = 1``), or ``D`` block-diagonal
    over units of ``k`` entries with every column of ``I`` inside one unit.

    Raises:
      ValueError: naming the violated condition (a dense GRU fails both).
    """
    k = unit_size(cell)
    carry = cell.initial_carry(params)
    theta, unravel_p = ravel_pytree(params)
    c0, unravel_c = ravel_pytree(carry)
    if cell.input_size is None:
        raise ValueError("check_diagonal needs cell.input_size to draw inputs")

    def f(th, c, x):
        return ravel_pytree(cell.step(unravel_p(th), unravel_c(c), x)[0])[0]

    S = c0.size
    for key_draw in jax.random.split(key, draws):
        kc, kx = jax.random.split(key_draw)
        c = jax.random.normal(kc, (S,), c0.dtype)
        x = jax.random.normal(kx, (cell.input_size,), c0.dtype)
        D = np.asarray(jax.jacfwd(f, argnums=1)(theta, c, x))
        I = np.asarray(jax.jacrev(f)(theta, c, x))
        if k > 1:
            blocks = carry_blocks(D != 0, I != 0)
            if blocks is None or blocks.shape[1] > k:
                sizes = "unequal" if blocks is None else str(blocks.shape[1])
                raise ValueError(
                    f"cell is not block-diagonal with units of {k} carry entries: the carry "
                    f"Jacobian and the parameters couple groups of {sizes} entries"
                )
            continue
        off = np.abs(D[~np.eye(S, dtype=bool)])
        if off.size and off.max() > 0:
            i, j = np.argwhere(np.abs(D) * (1 - np.eye(S)) > 0)[0]
            raise ValueError(
                f"cell is not element-wise: d carry'[{i}] / d carry[{j}] = {D[i, j]:.3g} != 0 "
                "(the carry Jacobian must be diagonal)"
            )
        nnz = (I != 0).sum(0)
        if nnz.size and nnz.max() > 1:
            j = int(np.argmax(nnz))
            raise ValueError(
                f"cell is not element-wise: parameter entry {j} (raveled) immediately "
                f"affects {int(nnz[j])} carry entries (at most 1 allowed)"
            )


def _prepare(cell, fc, theta, c, x):
    pat = probe_pattern(cell, fc, theta, c, x)
    k = unit_size(cell)
    if k == 1 and (pat.K > 1 or not pat.diag_D):
        raise ValueError(
            "cell declares diagonal=True but is not element-wise: "
            + ("its carry Jacobian is not diagonal" if not pat.diag_D else "")
            + (" and " if (not pat.diag_D and pat.K > 1) else "")
            + (f"a parameter touches {pat.K} carry entries" if pat.K > 1 else "")
            + "; build it with diagonal=False or use jaxrnn.grad.rtrl(..., diagonal=False)"
        )
    blocks = pat.blocks
    if k == 1:
        blocks = np.arange(fc.S, dtype=np.int32)[:, None]
    elif blocks is None or blocks.shape[1] > k:
        raise ValueError(
            f"cell declares diagonal={k} but its carry is not block-diagonal with units of "
            f"{k} entries; build it with diagonal=False or use "
            "jaxrnn.grad.rtrl(..., diagonal=False)"
        )
    unit_of = np.zeros(fc.S, np.int32)
    unit_of[blocks] = np.arange(blocks.shape[0], dtype=np.int32)[:, None]
    rows = blocks[unit_of[pat.units[0]]]  # (P, k): the carry entries of each parameter's unit
    return DiagonalContext(fc, jnp.asarray(blocks), jnp.asarray(rows), jnp.asarray(pat.valid[0]))


def _init(ctx: DiagonalContext, theta, c, M0, key):
    fc, blocks, rows, valid = ctx
    k = blocks.shape[1]
    if M0 is None:
        return jnp.zeros((k, fc.P), theta.dtype)
    return jnp.where(valid, M0[rows.T, jnp.arange(fc.P)], jnp.zeros((k, fc.P), theta.dtype))


def _history(ctx: DiagonalContext, E, g_c, g_y):
    _, _, rows, _ = ctx
    return jnp.sum(g_c[rows.T] * E, axis=0)


def _update(ctx: DiagonalContext, theta, c, x, E, key):
    fc, blocks, rows, _ = ctx
    k = blocks.shape[1]
    if k == 1:  # element-wise: one JVP and one VJP with ones
        ones = jnp.ones_like(c)
        _, vjp = jax.vjp(lambda th: fc.f(th, c, x)[0], theta)
        (i_t,) = vjp(ones)
        _, d = jax.jvp(lambda cc: fc.f(theta, cc, x)[0], (c,), (ones,))
        return (d[rows[:, 0]] * E[0] + i_t)[None]
    # one-hot per component, on every unit: (k, S)
    comps = jnp.zeros((k, fc.S), c.dtype).at[jnp.arange(k)[:, None], blocks.T].set(1.0)
    _, vjp = jax.vjp(lambda th: fc.f(th, c, x)[0], theta)
    i_t = jax.vmap(lambda s: vjp(s)[0])(comps)  # (k, P): I[(b(j), a), j]
    _, lin = jax.linearize(lambda cc: fc.f(theta, cc, x)[0], c)
    cols = jax.vmap(lin)(comps)  # (k_c, S): D[:, component c of every unit]
    Dblk = cols[:, rows.T]  # (c, a, P): D[(b(j), a), (b(j), c)]
    return jnp.einsum("cap,cp->ap", Dblk, E) + i_t


def diagonal_method() -> ForwardMethod:
    """Exact compressed RTRL for element-wise cells (see the module docstring)."""
    return ForwardMethod(prepare=_prepare, init=_init, update=_update, history=_history)
