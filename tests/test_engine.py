"""The recurrence engine (``jaxrnn.engine``): the fused path of the built-in cells equals
scanning their ``step``; forward mode works through every layer; padding is inert; the
engine is the only place that scans over time.

References: the step path (``fused=False``, ``lax.scan`` over ``cell.step``), reverse
mode against forward mode (``jax.jacrev`` vs ``jax.jacfwd``), zero-padded inputs.
"""

from __future__ import annotations

import ast
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sequence_paths import assert_sequence_equals_step
from sequence_paths import close as _close

import jaxrnn
from jaxrnn import engine

I, H, T = 3, 4, 7

FUSED_CELLS = {
    "rnn_tanh": lambda: jaxrnn.rnn(I, H, dtype=jnp.float64),
    "rnn_relu": lambda: jaxrnn.rnn(I, H, nonlinearity="relu", dtype=jnp.float64),
    "gru": lambda: jaxrnn.gru(I, H, dtype=jnp.float64),
    "lstm": lambda: jaxrnn.lstm(I, H, dtype=jnp.float64),
    "lstm_proj": lambda: jaxrnn.lstm(I, H, proj_size=2, dtype=jnp.float64),
    "lstm_proj_nobias": lambda: jaxrnn.lstm(I, H, proj_size=3, bias=False, dtype=jnp.float64),
    "stacked": lambda: jaxrnn.stack_cells(
        jaxrnn.rnn(I, 2, dtype=jnp.float64), jaxrnn.gru(2, H, bias=False, dtype=jnp.float64)
    ),
}


REVERSED = ("gru", "lstm_proj", "rnn_relu")  # reverse for one of each family (cost)


@pytest.mark.parametrize(
    ("name", "reverse"),
    [(n, False) for n in sorted(FUSED_CELLS)] + [(n, True) for n in REVERSED],
)
def test_fused_path_equals_step_path(name, reverse):
    """Outputs, final carry, reverse-mode and forward-mode derivatives (wrt params,
    inputs and initial carry) of the fused path equal the step path's, float64 1e-10,
    for every validity pattern (all valid, a prefix, gaps; with and without resets),
    in both directions. The patterns are data, vmapped, so each path compiles once."""
    cell = FUSED_CELLS[name]()
    assert cell.sequence is not None and cell.projection is not None
    ones, prefix = jnp.ones((T,), bool), jnp.arange(T) < 5
    gaps = jnp.array([1, 0, 1, 1, 0, 1, 1], bool)
    none, reset = jnp.zeros((T,), bool), jnp.array([0, 0, 1, 0, 0, 1, 0], bool)
    masks = jnp.stack([ones, prefix, gaps, prefix, ones])
    resets = jnp.stack([none, none, reset, reset, reset])
    assert_sequence_equals_step(cell, masks, resets, reverse=reverse, input_size=I)


@pytest.mark.parametrize("name", ["rnn_tanh", "lstm_proj"])
def test_fused_path_with_two_products_equals_step_path(name, monkeypatch):
    """Above ``CONCAT_MAX`` an additive cell's forward loop computes ``x W_ih^T`` and
    ``h W_hh^T`` as two products instead of one on ``[x, h]``: the same equalities."""
    from jaxrnn.cells import _fused

    monkeypatch.setattr(_fused, "CONCAT_MAX", 0)
    cell = FUSED_CELLS[name]()
    ones, gaps = jnp.ones((T,), bool), jnp.array([1, 0, 1, 1, 0, 1, 1], bool)
    none, reset = jnp.zeros((T,), bool), jnp.array([0, 0, 1, 0, 0, 1, 0], bool)
    masks, resets = jnp.stack([ones, gaps]), jnp.stack([none, reset])
    assert_sequence_equals_step(cell, masks, resets, reverse=False, input_size=I)


def test_fused_second_order_matches_step_path():
    cell = FUSED_CELLS["lstm_proj"]()
    params = cell.init(jax.random.key(0))
    xs = jax.random.normal(jax.random.key(1), (5, I), jnp.float64)

    def f(x, fused):
        return jnp.sum(engine.run(cell, params, x, cell.initial_carry(params), fused=fused)[1] ** 3)

    _close(jax.hessian(f)(xs, True), jax.hessian(f)(xs, False))


@pytest.mark.parametrize("seed", range(4))
def test_random_layer_configurations_fused_equals_step(seed):
    """Random stacks of (bi)directional built-in layers, with lengths: ``jaxrnn.nn``
    (fused) against the same layer built from cells stripped of ``sequence``."""
    rng = np.random.default_rng(seed)
    kind = ["RNN", "GRU", "LSTM"][seed % 3]
    kw = dict(num_layers=int(rng.integers(1, 3)), bidirectional=bool(rng.integers(0, 2)))
    kw["bias"] = bool(rng.integers(0, 2))
    if kind == "LSTM":
        kw["proj_size"] = int(rng.integers(0, 3))
    layer = getattr(jaxrnn.nn, kind)(I, H, dtype=jnp.float64, **kw)
    params = layer.init(jax.random.key(seed))
    B = 3
    x = jax.random.normal(jax.random.key(seed + 10), (T, B, I), jnp.float64)
    lengths = jnp.asarray(rng.integers(1, T + 1, size=B))

    def step_only(c):
        return c._replace(sequence=None)

    slow = jaxrnn.sequence.stack(
        *[
            jaxrnn.bidirectional(step_only(c[0]), step_only(c[1]))
            if layer.bidirectional
            else jaxrnn.recurrent(step_only(c[0]))
            for c in layer.cells
        ]
    )
    slow_params = tuple(p if layer.bidirectional else p[0] for p in params)

    def loss_fast(p, x):
        out, _ = layer.apply(p, x, lengths=lengths)
        return jnp.sum(jnp.tanh(out))

    def loss_slow(p, x):
        _, ys = jaxrnn.apply_batched(slow, p, jnp.swapaxes(x, 0, 1), length=lengths)
        return jnp.sum(jnp.tanh(ys))

    l_fast, g_fast = jax.jit(jax.value_and_grad(loss_fast, argnums=(0, 1)))(params, x)
    l_slow, g_slow = jax.jit(jax.value_and_grad(loss_slow, argnums=(0, 1)))(slow_params, x)
    _close(l_fast, l_slow)
    g_slow = (tuple(p if layer.bidirectional else (p,) for p in g_slow[0]), g_slow[1])
    _close(g_fast, g_slow)


# ------------------------------------------------------------------ forward mode


def _jac_both(f, *args):
    argnums = tuple(range(len(args)))
    return jax.jit(jax.jacfwd(f, argnums))(*args), jax.jit(jax.jacrev(f, argnums))(*args)


@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
def test_forward_mode_through_nn_layers(kind):
    """``jax.jacfwd`` equals ``jax.jacrev`` through ``jaxrnn.nn`` (2 layers,
    bidirectional, lengths), and ``jax.jvp`` runs."""
    extra = dict(proj_size=2, num_layers=2) if kind == "LSTM" else {}
    layer = getattr(jaxrnn.nn, kind)(I, H, bidirectional=True, dtype=jnp.float64, **extra)
    params = layer.init(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (4, 2, I), jnp.float64)
    lengths = jnp.array([4, 2])

    def f(p, x):
        return layer.apply(p, x, lengths=lengths)[0]

    fwd, rev = _jac_both(f, params, x)
    _close(fwd, rev)
    tangent = jax.tree_util.tree_map(jnp.ones_like, params)
    out, dout = jax.jvp(lambda p: f(p, x), (params,), (tangent,))
    assert out.shape == dout.shape and bool(jnp.all(jnp.isfinite(dout)))


@pytest.mark.parametrize("layer_kind", ["scan", "recurrent", "bidirectional", "stack"])
def test_forward_mode_through_sequence_layers(layer_kind):
    cell = jaxrnn.gru(I, H, dtype=jnp.float64)
    lstm = jaxrnn.lstm(H, H, dtype=jnp.float64)
    layer = {
        "scan": None,
        "recurrent": jaxrnn.recurrent(cell, reverse=True),
        "bidirectional": jaxrnn.bidirectional(cell, merge="sum"),
        "stack": jaxrnn.stack(cell, lstm),
    }[layer_kind]
    params = cell.init(jax.random.key(0)) if layer is None else layer.init(jax.random.key(0))
    xs = jax.random.normal(jax.random.key(1), (5, I), jnp.float64)
    reset = jnp.array([0, 0, 1, 0, 0], bool)

    def f(p, x):
        if layer is None:
            return jaxrnn.scan(cell, p, x, length=4, reset=reset)[1]
        return layer.apply(p, x, length=4, reset=reset)[1]

    fwd, rev = _jac_both(f, params, xs)
    _close(fwd, rev)


# ------------------------------------------------------------------ inert padding


@pytest.mark.parametrize("fused", [True, False])
def test_nan_in_padding_gives_finite_gradients_equal_to_zero_padding(fused):
    layer = jaxrnn.nn.LSTM(I, H, bidirectional=True, dtype=jnp.float64)
    if not fused:
        cells = [c._replace(sequence=None) for c in layer.cells[0]]
        lay = jaxrnn.bidirectional(*cells)
    params = layer.init(jax.random.key(0))
    B = 3
    lengths = jnp.array([7, 3, 5])
    x = jax.random.normal(jax.random.key(1), (B, T, I), jnp.float64)
    pad = jnp.arange(T)[None, :, None] >= lengths[:, None, None]
    x_zero = jnp.where(pad, 0.0, x)
    x_nan = jnp.where(pad, jnp.nan, x)

    def loss(p, x):
        if fused:
            out, _ = layer.apply(p, jnp.swapaxes(x, 0, 1), lengths=lengths)
        else:
            _, out = jaxrnn.apply_batched(lay, p[0], x, length=lengths)
        return jnp.sum(out**2)

    vg = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
    l0, g0 = vg(params, x_zero)
    l1, g1 = vg(params, x_nan)
    assert all(bool(jnp.all(jnp.isfinite(a))) for a in jax.tree_util.tree_leaves(g1))
    _close((l0, g0), (l1, g1), tol=1e-12)


def test_nan_under_a_zero_mask_is_inert_in_bptt():
    cell = jaxrnn.gru(I, H, dtype=jnp.float64)
    head = jnp.ones((H,), jnp.float64)
    params = (cell.init(jax.random.key(0)), head)
    xs = jax.random.normal(jax.random.key(1), (T, I), jnp.float64)
    targets = jax.random.normal(jax.random.key(2), (T,), jnp.float64)
    mask = jnp.array([1, 1, 0, 1, 0, 1, 1], bool)
    bad = jnp.where(mask[:, None], xs, jnp.inf)
    bad_t = jnp.where(mask, targets, jnp.nan)

    def step_loss(w, y, tgt):
        return (w @ y - tgt) ** 2

    for method in (jaxrnn.grad.bptt, jaxrnn.grad.rtrl):
        ref = method(cell, step_loss)(params, jnp.where(mask[:, None], xs, 0.0), targets, mask=mask)
        got = method(cell, step_loss)(params, bad, bad_t, mask=mask)
        _close(got, ref, tol=1e-12)


# ------------------------------------------------------------------ one scan site


def test_only_the_engine_scans_over_time():
    """``jax.lax.scan`` is called in ``jaxrnn/engine.py`` and in the fused
    whole-sequence implementation of the built-in cells, nowhere else."""
    root = pathlib.Path(jaxrnn.__file__).parent
    allowed = {"engine.py", "cells/_fused.py"}
    found = set()
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                if node.func.attr == "scan":
                    base = ast.unparse(node.func.value)
                    if base.endswith("lax"):
                        found.add(str(path.relative_to(root)))
    assert found <= allowed, sorted(found - allowed)
    assert "engine.py" in found


def test_eager_nn_apply_does_not_retrace():
    layer = jaxrnn.nn.GRU(I, H, dtype=jnp.float64)
    params = layer.init(jax.random.key(0))
    x = jnp.ones((5, 2, I), jnp.float64)
    layer.apply(params, x)
    before = layer._run._cache_size()
    for _ in range(3):
        layer.apply(params, x + 1.0)
    assert layer._run._cache_size() == before == 1
