"""The LSTM and GRU on oneDNN (``jaxrnn/cells/_onednn.py``) against the XLA path.

The path is on by default; this module makes sure of it (``_onednn.enabled()``) whatever
the environment says.
float32 runs take the oneDNN path (checked in the compiled program); the reference is
the same layer and parameters in float64, which always runs on XLA (itself tested
against PyTorch and a Python loop of the step elsewhere). Tolerances are float32's.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn
from jaxrnn.cells import _onednn

T, B, I, H = 5, 3, 3, 4  # B = 3 on 2 cores: chunks of 2 and 1 samples
F32, F64 = jnp.float32, jnp.float64
TOL = dict(rtol=2e-5, atol=2e-5)

CONFIGS = {
    "lstm": ("LSTM", {}),
    "gru": ("GRU", {}),
    "lstm-bi2-nobias": ("LSTM", dict(num_layers=2, bidirectional=True, bias=False)),
    "gru-bi2": ("GRU", dict(num_layers=2, bidirectional=True)),
}


def _layer(name, dtype=F32, hidden=H):
    kind, kw = CONFIGS[name]
    return getattr(jaxrnn.nn, kind)(I, hidden, dtype=dtype, **kw)


def _cast(tree, dtype):
    return jax.tree_util.tree_map(lambda a: a.astype(dtype), tree)


def _inputs(layer, seed=0):
    k_p, k_x, k_h = jax.random.split(jax.random.key(seed), 3)
    params = _cast(layer.init(k_p), F32)
    x = jax.random.normal(k_x, (T, B, I), F32)
    hx = jax.tree_util.tree_map(
        lambda h: 0.5 * jax.random.normal(k_h, h.shape, F32), layer.initial_state(B)
    )
    return params, x, hx


def _loss(layer):
    def loss(params, x, hx):
        ys, hn = layer.apply(params, x, hx)
        return jnp.sum(jnp.sin(ys)) + sum(jnp.sum(h**2) for h in jax.tree_util.tree_leaves(hn))

    return loss


def _close(a, b, **tol):
    for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(u, np.float64), np.asarray(v), **(tol or TOL))


def _uses_onednn(fn, *args, training: bool | None = None) -> bool:
    """Whether ``fn`` calls the oneDNN forward (with that ``training`` attribute, if
    given: oneDNN's training forward under differentiation, its inference one else)."""
    text = jax.jit(fn).lower(*args).as_text()
    if training is None:
        return "jaxrnn_onednn_forward" in text
    return f"training = {str(training).lower()}" in text


# The oneDNN wheels exist for Linux x86-64 only; there a missing build fails every test
# below (no skip), elsewhere the module is skipped.
pytestmark = pytest.mark.skipif(
    not (sys.platform == "linux" and platform.machine() == "x86_64"),
    reason="oneDNN wheels are for Linux x86-64",
)


def test_built():
    """The install built the extension (setup.py): a failed build is a failure here."""
    assert _onednn.available()


@pytest.fixture(autouse=True, scope="module")
def onednn_on():
    """The path on for the module (once: turning it on clears JAX's caches); the
    environment-variable test runs in subprocesses, which do not see it."""
    with _onednn.enabled():
        yield


@pytest.mark.parametrize(
    "name, hidden", [(name, H) for name in sorted(CONFIGS)] + [("gru", 24), ("lstm", 24)]
)
def test_outputs_states_and_gradients_equal_the_xla_path(name, hidden):
    """The cells' loops run over the samples below 16 units (H = 4), over the units from
    16 (H = 24)."""
    layer = _layer(name, hidden=hidden)
    params, x, hx = _inputs(layer)
    loss = _loss(layer)
    grad = jax.grad(loss, argnums=(0, 1, 2))
    assert _uses_onednn(grad, params, x, hx, training=True)
    assert not _uses_onednn(grad, params, x, hx, training=False)
    assert _uses_onednn(layer.apply, params, x, hx, training=False)
    assert not _uses_onednn(layer.apply, params, x, hx, training=True)
    assert not _uses_onednn(grad, *_cast((params, x, hx), F64))
    _close(jax.jit(layer.apply)(params, x, hx), layer.apply(*_cast((params, x, hx), F64)))
    _close(jax.jit(grad)(params, x, hx), grad(*_cast((params, x, hx), F64)))


@pytest.mark.parametrize(
    "name, hidden, blocked",
    [("lstm", H, 2), ("lstm", 24, 2), ("lstm-bi2-nobias", 24, 4), ("gru", H, 0)],
)
def test_blocked_gate_gradients_equal_the_xla_path(name, hidden, blocked):
    """A large chunk's LSTM backward writes the gates' gradients in the blocked layout the
    weight-gradient matmuls read, and dx step by step (``Kernel::blocked``); forced here
    at every size, so that the blocks' padding is exercised: chunks of 2 and 1 samples
    (10 and 5 rows, in blocks of 16 with AVX-512) and 4 H = 16 and 96 columns (blocks of
    64: one partial, or one full and one partial). The GRU's stays plain. ``blocked``:
    backwards run blocked, one per chunk (two chunks, or one per direction and layer)."""
    layer = _layer(name, hidden=hidden)
    params, x, hx = _inputs(layer)
    grad = jax.jit(jax.grad(_loss(layer), argnums=(0, 1, 2)))
    runs = _onednn._kernel_runs()[0]
    with _onednn._blocked_from(0):
        got = jax.block_until_ready(grad(params, x, hx))
    assert _onednn._kernel_runs()[0] - runs == blocked
    _close(got, grad(*_cast((params, x, hx), F64)))


@pytest.mark.parametrize(
    "name, hidden, calls", [("lstm", 40, 1), ("gru", 40, 1), ("gru-bi2", 24, 4)]
)
def test_one_sample_chunks_equal_the_xla_path(name, hidden, calls):
    """A chunk of one sample runs its step products by hand (``gemv()`` in ``_onednn.cc``,
    in blocks of 128, 64 and 16 columns, then one column at a time), in the inference
    forward too: the LSTM at 40 units has 160 columns forward (128 + 16 + 16) and 40
    backward (16 + 16 + 8), the GRU 120 (64 + 3 x 16 + 8) and 40. ``calls``: chunks per
    forward (one per direction and layer), each run by gemv()."""
    layer = _layer(name, hidden=hidden)
    params, x, hx = _inputs(layer)
    x, hx = x[:, :1], jax.tree_util.tree_map(lambda h: h[:, :1], hx)
    grad = jax.jit(jax.grad(_loss(layer), argnums=(0, 1, 2)))
    apply = jax.jit(layer.apply)
    runs = _onednn._kernel_runs()[1]
    ys = jax.block_until_ready(apply(params, x, hx))
    assert _onednn._kernel_runs()[1] - runs == calls
    got = jax.block_until_ready(grad(params, x, hx))
    assert _onednn._kernel_runs()[1] - runs == 3 * calls
    _close(ys, layer.apply(*_cast((params, x, hx), F64)))
    _close(got, grad(*_cast((params, x, hx), F64)))


@pytest.mark.parametrize("name", ["lstm", "gru", "gru-bi2"])
def test_forward_mode_and_second_order(name):
    """``jax.jvp`` (the XLA path's tangent of oneDNN's forward) and a Hessian-vector
    product (forward over oneDNN's backward) equal float64's."""
    layer = _layer(name)
    params, x, hx = _inputs(layer)
    dparams = jax.tree_util.tree_map(jnp.ones_like, params)
    loss = _loss(layer)

    def f(p):
        dt = jax.tree_util.tree_leaves(p)[0].dtype
        return loss(p, *_cast((x, hx), dt))

    def jvp(p, dp):
        return jax.jvp(f, (p,), (dp,))

    def hvp(p, dp):
        return jax.jvp(jax.grad(f), (p,), (dp,))

    _close(jvp(params, dparams), jvp(*_cast((params, dparams), F64)))
    _close(hvp(params, dparams), hvp(*_cast((params, dparams), F64)), rtol=1e-4, atol=1e-4)


def test_per_example_gradients_and_a_batch_of_models():
    """``vmap`` of ``grad`` (the backward batched: XLA path) and ``vmap`` over stacked
    parameters (weights batched: XLA path) equal a loop over examples and models."""
    layer = _layer("lstm")
    params, x, hx = _inputs(layer)
    loss = _loss(layer)

    def one(p, xb, hb):
        return loss(p, xb[:, None], jax.tree_util.tree_map(lambda h: h[:, None], hb))

    per_example = jax.vmap(jax.grad(one), in_axes=(None, 1, 1))(params, x, hx)
    for b in range(B):
        h_b = jax.tree_util.tree_map(lambda h, b=b: h[:, b], hx)
        want = jax.grad(one)(*_cast((params, x[:, b], h_b), F64))
        _close(jax.tree_util.tree_map(lambda g, b=b: g[b], per_example), want)
    other = _cast(_layer("lstm").init(jax.random.key(7)), F32)
    models = jax.tree_util.tree_map(lambda *a: jnp.stack(a), params, other)
    out = jax.vmap(lambda p: layer.apply(p, x, hx)[0])(models)
    for m, p in enumerate((params, other)):
        _close(out[m], layer.apply(*_cast((p, x, hx), F64))[0])


@pytest.mark.parametrize("name", ["gru", "lstm-bi2-nobias"])
def test_calls_of_one_shape_at_the_same_time_keep_their_own_results(name):
    """Calls of one shape share oneDNN plans (a sharded program runs them on every
    device at once); several threads calling one compiled gradient on different inputs
    get each input's own gradient. (The weight gradients were once summed from the
    plans after their locks were released, and a 4-device run trained wrongly.)"""
    from concurrent.futures import ThreadPoolExecutor

    layer = _layer(name)
    params, _, hx = _inputs(layer)
    xs = [jax.random.normal(jax.random.key(k), (T, B, I), F32) for k in range(8)]
    grad = jax.jit(jax.grad(_loss(layer), argnums=0))
    alone = [grad(params, x, hx) for x in xs]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(5):
            together = list(pool.map(lambda x: grad(params, x, hx), xs))
            for a, b in zip(together, alone, strict=True):
                _close(a, b, rtol=0, atol=0)


_SHARDED = """
import jax, jax.numpy as jnp, numpy as np, jaxrnn
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P
layer = jaxrnn.nn.GRU(3, 5, batch_first=True)
params = layer.init(jax.random.key(0))
x = jax.random.normal(jax.random.key(1), (8, 6, 3))
f = jax.jit(jax.value_and_grad(lambda p, x: jnp.sum(jnp.sin(layer.apply(p, x)[0]))))
one = f(params, x)
mesh = jax.make_mesh((4,), ("batch",), axis_types=(AxisType.Auto,))
args = (jax.device_put(params, NamedSharding(mesh, P())),
        jax.device_put(x, NamedSharding(mesh, P("batch"))))
four = f(*args)
for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(four)):
    np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5)
def local(p, x):  # shard_map: each device its own shard, the gradient summed
    v, g = jax.value_and_grad(lambda p, x: jnp.sum(jnp.sin(layer.apply(p, x)[0])))(p, x)
    return jax.lax.psum(v, "batch"), jax.tree.map(lambda a: jax.lax.psum(a, "batch"), g)
m = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=(P(), P("batch")), out_specs=(P(), P())))
for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(m(params, x))):
    np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5)
explicit = jax.make_mesh((4,), ("batch",), axis_types=(AxisType.Explicit,))
with jax.set_mesh(explicit):  # sharding in types: the batch stays sharded through it
    e_args = (jax.device_put(params, NamedSharding(explicit, P())),
              jax.device_put(x, NamedSharding(explicit, P("batch"))))
    e = jax.jit(jax.value_and_grad(lambda p, x: jnp.sum(jnp.sin(layer.apply(p, x)[0]))))
    for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(e(*e_args))):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5)
    assert jax.typeof(jax.jit(layer.apply)(*e_args)[0]).sharding.spec[0] == "batch"
    e_text = e.lower(*e_args).as_text()
for g, a in ((f, (params, x)), (f, args), (m, (params, x))):
    print("jaxrnn_onednn" in g.lower(*a).as_text())
print("jaxrnn_onednn" in e_text)
"""


def test_a_program_sharded_over_devices_takes_the_xla_path():
    """jit over 4 devices with the batch sharded (as ``fit`` shards it), on a mesh of
    ``Auto`` or of ``Explicit`` axes: the custom call has no partitioning rule, so that
    program lowers to the XLA path (with ``Explicit`` axes the outputs stay sharded over
    the batch); inside ``shard_map`` each device runs the custom call on its shard. All
    give the one-device program's value and gradients."""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    out = subprocess.run([sys.executable, "-c", _SHARDED], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "False", "True", "False"]


def test_the_plan_cache_is_bounded_and_rebuilds_dropped_plans():
    """Each shape (and chunk) gets a plan of oneDNN primitives and buffers; the cache
    keeps at most its byte limit of them, least recently used dropped first, and a
    dropped plan is built again when its shape comes back (same results)."""
    layer = _layer("lstm")
    params, _, hx = _inputs(layer)
    grad = jax.jit(jax.grad(_loss(layer), argnums=(0, 1)))
    xs = {t: jax.random.normal(jax.random.key(t), (t, B, I), F32) for t in (3, 4, 5, 6)}
    before = {t: grad(params, x, hx) for t, x in xs.items()}
    count, size, limit = _onednn.plan_cache()
    assert count >= len(xs) and 0 < size <= limit  # a training plan per length and chunk
    try:
        assert _onednn.plan_cache(0) == (0, 0, 0)  # keep only the plan in use: none
        for t, x in xs.items():
            _close(grad(params, x, hx), before[t], rtol=0, atol=0)
            assert _onednn.plan_cache()[0] == 1
    finally:
        _onednn.plan_cache(limit)
    assert _onednn.plan_cache()[2] == limit
    for bad in (-1, 1.5, True, "1"):
        with pytest.raises(ValueError, match="limit must be a non-negative integer"):
            _onednn.plan_cache(bad)


def test_layers_of_one_shape_keep_their_own_workspaces():
    """The forward's workspace stays in the plan of its shape, in one of 8 slots, until
    the backward reads it. Layers 2-11 of an 11-layer LSTM share one plan, so their
    workspaces take all 8 slots and the backward of the 3 earliest runs their forward
    again: the gradients still equal float64's."""
    layer = jaxrnn.nn.LSTM(I, I, num_layers=11)
    params, x, hx = _inputs(layer)
    grad = jax.jit(jax.grad(_loss(layer), argnums=(0, 1, 2)))
    _close(
        grad(params, x, hx), jax.grad(_loss(layer), argnums=(0, 1, 2))(*_cast((params, x, hx), F64))
    )


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_a_backward_finds_its_forward_after_other_calls(name):
    """A ``vjp`` called twice, and one kept while 9 other forwards of its shape run (more
    than the 8 slots) and then called twice: each call gives float64's gradients. (A
    backward overwrites its workspace with the gates' gradients, so a second call runs
    the forward again, as it does for a workspace that other forwards took.)"""
    layer = _layer(name)
    params, x, hx = _inputs(layer)

    def f(p, x, h):
        ys, _ = layer.apply(p, x, h)
        return jnp.sin(ys)

    ys, vjp = jax.vjp(f, params, x, hx)
    ct = jnp.cos(ys)
    want = jax.vjp(f, *_cast((params, x, hx), F64))[1](ct.astype(F64))
    _close(vjp(ct), want)
    _close(vjp(ct), want)
    ys, vjp = jax.vjp(f, params, x, hx)
    for k in range(9):
        jax.vjp(f, params, x + k + 1, hx)
    _close(vjp(ct), want)
    _close(vjp(ct), want)


def _custom_calls(fn, *args) -> tuple[int, int]:
    """How many oneDNN forward and backward calls ``jit(fn)`` makes."""
    text = jax.jit(fn).lower(*args).as_text()
    return text.count("@jaxrnn_onednn_forward("), text.count("@jaxrnn_onednn_backward(")


@pytest.mark.parametrize("batch", [1, B])
def test_a_bidirectional_layer_is_one_call_for_both_directions(batch):
    """Both directions of each bidirectional layer run in one forward and one backward
    call (one direction per core under training), with the float64 values and gradients
    (``batch`` 1: no batch to cut; 3: the inference forward cuts it in 2 and 1)."""
    layer = _layer("gru-bi2")
    params, x, hx = _inputs(layer)
    x, hx = x[:, :batch], jax.tree_util.tree_map(lambda h: h[:, :batch], hx)
    grad = jax.grad(_loss(layer), argnums=(0, 1, 2))
    assert _custom_calls(grad, params, x, hx) == (2, 2)
    assert _custom_calls(layer.apply, params, x, hx) == (2, 0)
    _close(jax.jit(layer.apply)(params, x, hx), layer.apply(*_cast((params, x, hx), F64)))
    _close(jax.jit(grad)(params, x, hx), grad(*_cast((params, x, hx), F64)))


@pytest.mark.parametrize(
    "forward, backward, merge, calls",
    [
        (("lstm", H), ("lstm", H), "sum", 1),  # paired; the merge reads both halves
        (("lstm", H), ("gru", H), "concat", 2),  # two kinds: one call each
        (("gru", H), ("gru", H + 1), "concat", 2),  # two widths: one call each
    ],
)
def test_bidirectional_pairs_only_cells_of_one_kind_and_width(forward, backward, merge, calls):
    """``jaxrnn.bidirectional`` of the built-in cells: one oneDNN call where both
    directions are one kind and width, else one per direction; float64's values and
    gradients either way."""
    cells = [getattr(jaxrnn.cells, kind)(I, width) for kind, width in (forward, backward)]
    layer = jaxrnn.bidirectional(*cells, merge=merge)
    params = _cast(layer.init(jax.random.key(3)), F32)
    x = jax.random.normal(jax.random.key(4), (B, T, I), F32)

    def loss(p, x):
        (cf, cb), ys = jax.vmap(lambda x: layer.apply(p, x))(x)
        return jnp.sum(jnp.sin(ys)) + sum(jnp.sum(c**2) for c in jax.tree.leaves((cf, cb)))

    grad = jax.grad(loss, argnums=(0, 1))
    assert _custom_calls(grad, params, x) == (calls, calls)
    _close(jax.jit(loss)(params, x), loss(*_cast((params, x), F64)))
    _close(jax.jit(grad)(params, x), grad(*_cast((params, x), F64)))


def test_other_configurations_stay_on_xla():
    layer = _layer("lstm")
    params, x, hx = _inputs(layer)
    lengths = jnp.array([5, 2, 4])
    assert not _uses_onednn(lambda p, x: layer.apply(p, x, hx, lengths=lengths)[0], params, x)
    proj = jaxrnn.nn.LSTM(I, H, proj_size=2)
    p_proj = _cast(proj.init(jax.random.key(1)), F32)
    assert not _uses_onednn(lambda p, x: proj.apply(p, x)[0], p_proj, x)
    with jaxrnn.onednn.disabled():  # the public switch (jaxrnn/onednn.py)
        assert not jaxrnn.onednn.active()
        assert not _uses_onednn(lambda p, x: layer.apply(p, x, hx)[0], params, x)
    assert jaxrnn.onednn.active()
    assert _uses_onednn(lambda p, x: layer.apply(p, x, hx)[0], params, x)


@pytest.mark.parametrize("value, on", [(None, True), ("0", False), ("1", True)])
def test_environment_variable_turns_it_off(value, on):
    """On by default; ``JAXRNN_ONEDNN=0`` at import turns it off."""
    code = (
        "import jax, jax.numpy as jnp, jaxrnn\n"
        "lstm = jaxrnn.nn.LSTM(3, 4)\n"
        "p, x = lstm.init(jax.random.key(0)), jnp.ones((5, 2, 3), jnp.float32)\n"
        "print('jaxrnn_onednn' in jax.jit(lstm.apply).lower(p, x).as_text())"
    )
    env = {k: v for k, v in os.environ.items() if k != "JAXRNN_ONEDNN"}
    if value is not None:
        env["JAXRNN_ONEDNN"] = value
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == str(on)
