"""The check shared by tests/test_engine.py (the fused path of the built-in cells) and
tests/test_parallel.py (the parallel paths of the modern cells): a cell's whole-sequence
implementation (``Cell.sequence``) equals the engine's step path (``fused=False``,
``lax.scan`` over ``cell.step``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn import engine


def close(a, b, tol=1e-10):
    jax.tree_util.tree_map(lambda u, v: np.testing.assert_allclose(u, v, rtol=tol, atol=tol), a, b)


def random_carry(cell, params, key):
    """An initial carry with every leaf ~ N(0, 1) (so ``h_0`` enters every path)."""
    leaves, tree = jax.tree_util.tree_flatten(cell.initial_carry(params))
    keys = jax.random.split(key, len(leaves))
    return tree.unflatten([jax.random.normal(k, a.shape, a.dtype) for k, a in zip(keys, leaves)])


def assert_sequence_equals_step(cell, masks, resets, *, reverse, input_size):
    """Outputs, final carry, reverse-mode and forward-mode derivatives (wrt params,
    inputs and a random initial carry) of ``cell.sequence`` equal the step path's,
    float64 1e-10, for each validity pattern ``masks[i], resets[i]`` (each ``(T,)``).
    The patterns are data, vmapped, so each path compiles once."""
    kp, kx, kc = jax.random.split(jax.random.key(3), 3)
    params = cell.init(kp)
    xs = jax.random.normal(kx, (masks.shape[1], input_size), jnp.float64)
    carry = random_carry(cell, params, kc)

    def f(p, x, c, m, r, fused):
        c, ys = engine.run(cell, p, x, c, mask=m, reset=r, reverse=reverse, fused=fused)
        leaves = jax.tree_util.tree_leaves(c)
        return jnp.sum(jnp.sin(ys)) + sum(jnp.sum(a * a) for a in leaves), (c, ys)

    def both(fused):
        vg = jax.value_and_grad(f, argnums=(0, 1, 2), has_aux=True)
        return jax.jit(jax.vmap(lambda m, r: vg(params, xs, carry, m, r, fused)))(masks, resets)

    step = both(False)
    close(both(True), step)
    jf = jax.jacfwd(lambda p, x, c, m, r: f(p, x, c, m, r, True)[0], argnums=(0, 1, 2))
    close(jax.jit(jax.vmap(lambda m, r: jf(params, xs, carry, m, r)))(masks, resets), step[1])
