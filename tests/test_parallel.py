"""Parallel whole-sequence paths (``cells/_parallel.py``) of the modern recurrences equal
scanning their ``step`` (the engine's step path, itself checked against the papers'
equations in NumPy by the battery): outputs, final carry, reverse- and forward-mode
derivatives (wrt parameters, inputs and a random initial carry), float64 to 1e-10,
with every validity pattern (all valid, a valid prefix, gaps, resets, both), in both
directions."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sequence_paths import assert_sequence_equals_step
from sequence_paths import close as _close

import jaxrnn
from jaxrnn import engine

I, T = 3, 7

PARALLEL_CELLS = {
    "min_gru": lambda dt: jaxrnn.min_gru(I, 4, dtype=dt),
    "min_lstm": lambda dt: jaxrnn.min_lstm(I, 4, bias=False, dtype=dt),
    "lru": lambda dt: jaxrnn.lru(I, 4, output_size=2, dtype=dt),
    "rg_lru": lambda dt: jaxrnn.rg_lru(I, I, dtype=dt),
    "rg_lru_projected": lambda dt: jaxrnn.rg_lru(I, 4, dtype=dt),
    "mlstm": lambda dt: jaxrnn.mlstm(I, 4, num_heads=2, dtype=dt),
    "mlstm_exp": lambda dt: jaxrnn.mlstm(I, 2, forget_gate="exp", dtype=dt),
}


def _patterns():
    ones, prefix = jnp.ones((T,), bool), jnp.arange(T) < 5
    gaps = jnp.array([1, 0, 1, 1, 0, 1, 1], bool)
    none = jnp.zeros((T,), bool)
    reset = jnp.array([0, 0, 1, 0, 0, 1, 0], bool)
    first = jnp.array([1, 0, 0, 1, 0, 0, 0], bool)  # a reset at the first step too
    masks = jnp.stack([ones, prefix, gaps, prefix, ones, gaps])
    resets = jnp.stack([none, none, reset, reset, first, first])
    return masks, resets


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("name", sorted(PARALLEL_CELLS))
def test_parallel_path_equals_sequential_scan(name, reverse):
    cell = PARALLEL_CELLS[name](jnp.float64)
    assert cell.sequence is not None
    # any sign of h_0 (the helper draws it from N(0, 1)): the log-space scan takes it linearly
    masks, resets = _patterns()
    assert_sequence_equals_step(cell, masks, resets, reverse=reverse, input_size=I)


def test_padding_is_inert_in_the_parallel_paths():
    """NaN in masked steps reaches neither a value nor a gradient (the parallel paths see
    zeroed inputs and identity coefficients there)."""
    cell = PARALLEL_CELLS["min_lstm"](jnp.float64)
    params = cell.init(jax.random.key(0))
    xs = jax.random.normal(jax.random.key(1), (T, I), jnp.float64)
    mask = jnp.array([1, 1, 0, 1, 1, 0, 0], bool)

    def loss(p, x):
        return jnp.sum(jaxrnn.scan(cell, p, x, mask=mask)[1] ** 2)

    vg = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
    ref = vg(params, jnp.where(mask[:, None], xs, 0.0))
    got = vg(params, jnp.where(mask[:, None], xs, jnp.nan))
    _close(got, ref, tol=1e-12)


@pytest.mark.parametrize("name", ["min_gru", "rg_lru"])
def test_long_sequences_are_stable_in_float32(name):
    """T = 1024 in float32: the products of the decays underflow (the cumulative-sum form
    of the scan would divide by zero); the parallel path stays finite, its gradients
    too, and it agrees with the float64 sequential scan to float32 accuracy."""
    Tl = 1024
    cell32, cell64 = PARALLEL_CELLS[name](jnp.float32), PARALLEL_CELLS[name](jnp.float64)
    p64 = cell64.init(jax.random.key(0))
    p32 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), p64)
    xs = jax.random.normal(jax.random.key(1), (Tl, I), jnp.float64)
    reset = jnp.zeros((Tl,), bool).at[700].set(True)

    def loss(cell, p, x, fused):
        return jnp.mean(engine.run(cell, p, x, cell.initial_carry(p), reset=reset, fused=fused)[1])

    ys32 = jax.jit(lambda p, x: jaxrnn.scan(cell32, p, x, reset=reset)[1])(
        p32, xs.astype(jnp.float32)
    )
    ys64 = jax.jit(lambda p, x: jaxrnn.scan(cell64, p, x, reset=reset, fused=False)[1])(p64, xs)
    np.testing.assert_allclose(ys32, ys64, rtol=1e-4, atol=1e-5)
    g = jax.jit(jax.grad(lambda p: loss(cell32, p, xs.astype(jnp.float32), True)))(p32)
    g64 = jax.jit(jax.grad(lambda p: loss(cell64, p, xs, False)))(p64)
    for a, b in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(g64)):
        assert bool(jnp.all(jnp.isfinite(a)))
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


def test_parallel_cells_refuse_bad_arguments():
    with pytest.raises(ValueError, match="hidden_size"):
        jaxrnn.min_gru(3, 0)
    with pytest.raises(ValueError, match="r_max"):
        jaxrnn.lru(3, 4, r_min=0.5, r_max=0.4)
    with pytest.raises(ValueError, match="max_rad"):
        jaxrnn.rg_lru(3, 3, min_rad=0.9, max_rad=1.0)
    with pytest.raises(ValueError, match="output_size"):
        jaxrnn.lru(3, 4, output_size=0)
    for factory in (jaxrnn.slstm, jaxrnn.mlstm):
        with pytest.raises(ValueError, match="num_heads"):
            factory(3, 5, num_heads=2)
        with pytest.raises(ValueError, match="forget_gate"):
            factory(3, 4, forget_gate="tanh")
