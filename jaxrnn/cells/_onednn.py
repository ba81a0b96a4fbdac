r"""The built-in LSTM and GRU on oneDNN, on XLA:CPU.

oneDNN (the library behind PyTorch's CPU LSTM) implements whole-sequence LSTM and
"linear-before-reset" GRU layers, forward and backward, with the whole recurrence in one
call. Where it applies, :func:`jaxrnn.cells._fused.gated_sequence` runs the ``lstm`` and
``gru`` cells through ``jaxrnn/cells/_onednn.cc`` (two XLA FFI custom calls) instead of
XLA's loop, and :class:`jaxrnn.cells._fused.GatedPair` runs both directions of a
bidirectional layer in one call (:func:`sequences`; one direction per core on 2 cores).
The inference forward is oneDNN's RNN primitive; the training forward and backward are
our own loop over oneDNN matmuls (the two recurrent products per step, every other
product one matmul over all steps, the cells' arithmetic in vectorised C++), faster than
oneDNN's RNN primitive there (``benchmarks/README.md``). A chunk of one sample runs its
step products by hand instead of by oneDNN (whose call costs as much as the product
there), its inference forward too (``gemv`` in ``_onednn.cc``):

- on by default; off with ``JAXRNN_ONEDNN=0`` in the environment when jaxrnn is
  imported, or inside :func:`disabled` (:func:`enabled` turns it back on);
- CPU backend, float32 inputs, weights and carry, static shapes, no ``mask``/``reset``,
  no projection (LSTMP), and the library built (:func:`available`);
- everything else (float64, padding, resets, other cells and backends) keeps the XLA
  path, which this path equals to float32 rounding (tests say so).

Layouts (one per layer): the ``D`` layers of a call (directions) read one input ``x (B,
T, I)``, write ``y (B, T, D, H)`` (a bidirectional layer's concatenated output, as it is)
and are stacked on a leading axis of everything else; the weights in PyTorch's layout and
gate order, ``wl = W_ih (G H, I)``, ``wi = W_hh (G H, H)`` (the C++ side reorders them
for oneDNN, faster than XLA's transposes, which took up to 9 % of a bidirectional
layer's forward); LSTM ``bias = b_ih + b_hh`` as ``(4, H)``; GRU ``bias = [b_ir + b_hr,
b_iz + b_hz, b_in, b_hn]`` (``b_hn`` stays inside the reset product, as in PyTorch).

Differentiation. The forward call is a primitive whose JVP is a second primitive, the
tangent map: linear in the tangents, evaluated (forward mode) by JAX's tangent of the
XLA path, and transposed (reverse mode) by the backward call, which reuses the forward's
workspace (gates and states of every step; the backward overwrites the gates with their
gradients, so a backward called again runs the forward again). The workspace stays on
the C++ side, in buffers kept from call to call (XLA would allocate it afresh each time,
and the kernel zero each fresh page); the forward returns a stamp by which the backward
finds it, and the backward runs the forward again where another call has taken it. So
``jax.grad`` runs the custom forward and backward, and ``jax.jvp``/``jax.jacfwd``/higher
orders keep working through the XLA path. Batching: ``vmap`` over the batch folds into
oneDNN's batch dimension; a batched tangent, backward, or batched weights (``vmap`` over
models) use the XLA path.

An undifferentiated call runs oneDNN's inference forward, which keeps no workspace
(one sample: ours, into one workspace per plan); under ``jax.grad`` the forward is our
training forward, which keeps one per call (up to 8 per plan).

A program that XLA partitions over several devices (``jit`` with sharded arguments on a
mesh of ``Auto`` axes, as :func:`jaxrnn.train.fit` on a mesh) lowers these primitives to
the XLA path instead of the custom calls, which have no partitioning rule.

Threads: the work is cut into chunks, each run with one OpenMP thread on XLA's
own thread pool (``_onednn.cc``): the batch in one chunk per core, or, for the two
directions of a bidirectional layer under training, one direction per core. No OpenMP
team is ever opened, so the OpenMP runtime, which PyTorch shares when it is loaded,
keeps its behaviour (``benchmarks/bench_onednn_torch.py``: PyTorch's LSTM takes as long
after this path has run as before).
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import functools
import glob
import importlib.metadata
import os
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

__all__ = [
    "active",
    "available",
    "disabled",
    "enabled",
    "plan_cache",
    "sequence",
    "sequences",
    "usable",
]

_KIND = {"lstm": 0, "gru": 1}
_ENABLED: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "jaxrnn_onednn", default=os.environ.get("JAXRNN_ONEDNN", "1") != "0"
)


@functools.cache
def _load():
    """The built custom-call library, with oneDNN loaded first (``None`` if absent);
    loaded on first use, so that a process that never turns the path on never loads
    oneDNN or its OpenMP runtime."""
    try:
        dist = importlib.metadata.distribution("onednn-cpu-gomp")
        (dnnl,) = [f for f in dist.files or () if str(f).endswith("libdnnl.so.3")]
        # Loaded first so that the extension's libdnnl.so.3 resolves to it. Its OpenMP
        # runtime (libgomp.so.1) is the one PyTorch uses too, whichever loads first (the
        # soname matches); _onednn.cc's OneThread keeps that harmless.
        ctypes.CDLL(str(dist.locate_file(dnnl)))
        (path,) = glob.glob(os.path.join(os.path.dirname(__file__), "_onednn_lib*.so"))
        lib = ctypes.CDLL(path)
    except (importlib.metadata.PackageNotFoundError, ValueError, OSError):
        return None
    lib.jaxrnn_onednn_prepare.restype = ctypes.c_int64
    lib.jaxrnn_onednn_prepare.argtypes = [ctypes.c_int64, ctypes.c_int64, ctypes.c_bool] + [
        ctypes.c_int64
    ] * 5
    lib.jaxrnn_onednn_blocked.restype = ctypes.c_int64
    lib.jaxrnn_onednn_blocked.argtypes = [ctypes.c_int64, ctypes.POINTER(ctypes.c_int64)]
    for name, symbol in (
        ("jaxrnn_onednn_forward", lib.JaxrnnOnednnForward),
        ("jaxrnn_onednn_backward", lib.JaxrnnOnednnBackward),
    ):
        jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(symbol), platform="cpu")
    return lib


def available() -> bool:
    """Whether the oneDNN custom calls were built (loads them on the first call)."""
    return _load() is not None


def _built():
    """The loaded library; ``RuntimeError`` if it was not built."""
    lib = _load()
    if lib is None:
        raise RuntimeError("the oneDNN path is not built (jaxrnn.onednn.available())")
    return lib


def plan_cache(limit: int | None = None) -> tuple[int, int, int]:
    """The oneDNN plans kept between calls: ``(plans, bytes, limit)``.

    Each shape (and chunk of the batch) gets a plan on its first call: oneDNN's
    primitives, their scratchpad and weight buffers, and, for training, up to 8
    workspaces kept from a forward to its backward and reused by the next calls. Plans
    are kept up to ``limit`` bytes (4 GiB unless set), the least recently used dropped
    first (a dropped plan is built again when its shape comes back; a call keeps its own
    plans until it ends). ``limit`` sets the limit before the counts are read (``0``
    keeps only the plan in use).

    Raises:
      RuntimeError: the oneDNN library is not built (:func:`available`).
      ValueError: ``limit`` not a non-negative integer.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be a non-negative integer (bytes), got {limit!r}")
    out = [ctypes.c_int64() for _ in range(3)]
    limit_c = ctypes.c_int64(-1 if limit is None else limit)
    _built().jaxrnn_onednn_plans(limit_c, *map(ctypes.byref, out))
    return out[0].value, out[1].value, out[2].value


def _kernel_runs() -> tuple[int, int]:
    """For tests: how many chunks' backwards have kept their gate gradients blocked
    (``Kernel::blocked`` in ``_onednn.cc``), and how many chunks' forwards and backwards
    have run their step products by ``gemv()`` (``Kernel::gemv``), so far."""
    runs = (ctypes.c_int64 * 2)()
    _built().jaxrnn_onednn_blocked(-1, runs)
    return runs[0], runs[1]


@contextlib.contextmanager
def _blocked_from(nbytes: int) -> Iterator[None]:
    """For tests: inside, a chunk whose gate gradients take at least ``nbytes`` keeps them
    blocked in its backward (``Kernel::blocked`` in ``_onednn.cc``; from 8 MiB otherwise).
    The plans are dropped on entry and on exit, so that calls make theirs anew."""
    lib = _built()
    limit, runs = plan_cache()[2], (ctypes.c_int64 * 2)()
    before = lib.jaxrnn_onednn_blocked(nbytes, runs)
    plan_cache(0), plan_cache(limit)
    try:
        yield
    finally:
        lib.jaxrnn_onednn_blocked(before, runs)
        plan_cache(0), plan_cache(limit)


def active() -> bool:
    """Whether calls traced now take the path where :func:`usable` (on here, and built)."""
    return _ENABLED.get() and available()


@contextlib.contextmanager
def _switched(on: bool) -> Iterator[None]:
    token = _ENABLED.set(on)
    jax.clear_caches()
    try:
        yield
    finally:
        _ENABLED.reset(token)
        jax.clear_caches()


def enabled() -> contextlib.AbstractContextManager[None]:
    """Trace the LSTM and GRU on oneDNN inside this block (where :func:`usable`).

    JAX's caches are cleared on entry and on exit, so that functions traced before
    (or inside) are traced again; a function jitted inside keeps the path it got.
    """
    return _switched(True)


def disabled() -> contextlib.AbstractContextManager[None]:
    """Trace with the XLA path inside this block (caches cleared as :func:`enabled`)."""
    return _switched(False)


def usable(spec, w, xs, h0, s0, mask, reset) -> bool:
    """Whether :func:`sequence` applies to this call (see the module docstring)."""
    arrays = [xs, w.w_ih, w.w_hh, h0] + [a for a in (w.b_ih, w.b_hh, s0) if a is not None]
    return (
        spec.onednn in _KIND
        and w.w_hr is None
        and mask is None
        and reset is None
        and jax.default_backend() == "cpu"
        and all(jnp.result_type(a) == jnp.float32 for a in arrays)
        and all(isinstance(d, int) for d in (*xs.shape, *h0.shape))  # not symbolic
        and active()
    )


# ----------------------------------------------------------------------------- layouts


def _to_onednn(kind: str, w):
    """PyTorch-layout weights -> ``(wl, wi, bias)`` (module docstring)."""
    G = 4 if kind == "lstm" else 3
    H = w.w_hh.shape[1]
    b_ih = jnp.zeros((G * H,), w.w_ih.dtype) if w.b_ih is None else w.b_ih
    b_hh = jnp.zeros((G * H,), w.w_ih.dtype) if w.b_hh is None else w.b_hh
    if kind == "lstm":
        return w.w_ih, w.w_hh, (b_ih + b_hh).reshape(4, H)
    bi, bh = b_ih.reshape(3, H), b_hh.reshape(3, H)
    return w.w_ih, w.w_hh, jnp.stack([bi[0] + bh[0], bi[1] + bh[1], bi[2], bh[2]])


def _from_onednn(kind: str, wl, wi, bias):
    """``(wl, wi, bias)`` -> PyTorch-layout ``GatedWeights`` computing the same cell."""
    from jaxrnn.cells._fused import GatedWeights

    if kind == "lstm":
        return GatedWeights(wl, bias.reshape(-1), wi, None, None)
    b_hh = jnp.concatenate([jnp.zeros_like(bias[3]), jnp.zeros_like(bias[3]), bias[3]])
    return GatedWeights(wl, bias[:3].reshape(-1), wi, b_hh, None)


# ------------------------------------------------------------- the XLA path, same layout


def _reference(x, wl, wi, bias, h0, c0, *, spec, reverse):
    """``(y, hT, cT)`` by the XLA fused path, in the primitives' layout (layer ``d``
    in direction ``reverse[d]``)."""
    from jaxrnn.cells._fused import _core

    lstm = spec.onednn == "lstm"
    outs = []
    for d, rev in enumerate(reverse):
        w = _from_onednn(spec.onednn, wl[d], wi[d], bias[d])
        core = _core(spec, rev, 1, False, False)

        def one(xs, h, c, core=core, w=w):
            (h, s), ys = core(xs, w, h, c if lstm else None, None, None, None, None)
            return ys, h, s if lstm else jnp.zeros_like(h)

        outs.append(jax.vmap(one)(x, *(_batch_like(s[d], x) for s in (h0, c0))))
    y, hT, cT = zip(*outs)
    return jnp.stack(y, axis=2), jnp.stack(hT), jnp.stack(cT)


def _batch_like(a, x):
    """A state ``a (B, H)`` sharded over the batch as ``x (B, T, I)`` is, where ``x``'s
    batch axis is sharded on an ``Explicit`` mesh axis: ``vmap`` wants its mapped axes
    sharded alike."""
    spec = jax.typeof(x).sharding.spec
    if not spec or spec[0] is None or spec[0] == jax.typeof(a).sharding.spec[0]:
        return a
    return jax.sharding.reshard(a, jax.sharding.PartitionSpec(spec[0], None))


def _aval(shape, dtype, x, batch_axis):
    """The aval of a result: sharded over the batch (its axis ``batch_axis``; ``None``:
    none) as ``x`` is over its axis 0, which matters on a mesh of ``Explicit`` axes."""
    x = _typeof(x)
    spec = [None] * len(shape)
    if batch_axis is not None and len(x.sharding.spec):
        spec[batch_axis] = x.sharding.spec[0]
    sharding = x.sharding.update(spec=jax.sharding.PartitionSpec(*spec))
    return jax.core.ShapedArray(shape, dtype, sharding=sharding)


def _typeof(a):
    """The aval of an array, tracer or aval."""
    return a if isinstance(a, jax.core.ShapedArray) else jax.typeof(a)


def _tangent_impl(*args, spec, reverse):
    primals, tangents = args[:6], args[7:]
    return jax.jvp(functools.partial(_reference, spec=spec, reverse=reverse), primals, tangents)[1]


def _backward_reference(*args, spec, reverse):
    primals, cts = args[:6], args[7:]
    _, vjp = jax.vjp(functools.partial(_reference, spec=spec, reverse=reverse), *primals)
    return vjp(tuple(cts))


# ------------------------------------------------------------------------- primitives

forward_p = Primitive("jaxrnn_onednn_forward")
forward_p.multiple_results = True
tangent_p = Primitive("jaxrnn_onednn_tangent")
tangent_p.multiple_results = True
backward_p = Primitive("jaxrnn_onednn_backward")
backward_p.multiple_results = True


def _bits(reverse) -> np.int64:
    """The ``reverse`` attribute of the custom calls: bit ``d`` for layer ``d``."""
    return np.int64(sum(int(r) << d for d, r in enumerate(reverse)))


def _prepare(spec, reverse, training, x, h0) -> None:
    """Build the call's oneDNN plans when JAX traces it (``RuntimeError`` if oneDNN has
    no primitive for the shape)."""
    B, T, I = x.shape
    D, _, H = h0.shape
    if _load().jaxrnn_onednn_prepare(_KIND[spec.onednn], _bits(reverse), training, D, T, B, I, H):
        raise RuntimeError(f"oneDNN has no {spec.onednn} for shape {(T, B, I, H)}")


def _forward_abstract(x, wl, wi, bias, h0, c0, *, spec, reverse, training):
    """``y (B, T, D, H)``, ``hT``, ``cT (D, B, H)`` and the call's stamp (8 bytes: the
    backward finds the forward's workspace, kept by the C++ side, by it)."""
    _prepare(spec, reverse, training, x, h0)
    return [*_outputs(x, h0), _aval((8,), jnp.uint8, x, None)]


def _outputs(x, h0):
    """The avals of ``y (B, T, D, H)``, ``hT`` and ``cT (D, B, H)`` (or their tangents)."""
    B, T, _ = x.shape
    D, _, H = h0.shape
    state = _aval(h0.shape, x.dtype, x, 1)
    return [_aval((B, T, D, H), x.dtype, x, 0), state, state]


def _backward_abstract(*args, spec, reverse):
    return [jax.core.ShapedArray(a.shape, a.dtype, sharding=_typeof(a).sharding) for a in args[:6]]


def _custom_call(target: str, abstract):
    """The impl of a primitive that is the custom call ``target`` with results
    ``abstract(*args, spec=..., reverse=...)``."""

    def impl(*args, spec, reverse, **attrs):
        results = [
            jax.ShapeDtypeStruct(a.shape, a.dtype)
            for a in abstract(*args, spec=spec, reverse=reverse, **attrs)
        ]
        call = jax.ffi.ffi_call(target, results)
        return call(*args, kind=np.int64(_KIND[spec.onednn]), reverse=_bits(reverse), **attrs)

    return impl


_forward_impl = _custom_call("jaxrnn_onednn_forward", _forward_abstract)
_backward_impl = _custom_call("jaxrnn_onednn_backward", _backward_abstract)


def _tangent_abstract(x, wl, wi, bias, h0, c0, stamp, *tangents, spec, reverse):
    """The tangents of ``y``, ``hT`` and ``cT``."""
    return _outputs(x, h0)


def _forward_reference(x, wl, wi, bias, h0, c0, *, spec, reverse, training):
    """``forward_p`` on the XLA path: ``(y, hT, cT)`` and an unused stamp."""
    y, hT, cT = _reference(x, wl, wi, bias, h0, c0, spec=spec, reverse=reverse)
    return y, hT, cT, jnp.zeros((8,), jnp.uint8)


def _lowering(impl, reference):
    """Lower to the custom call, or to the XLA path in a program that XLA partitions over
    several devices (``jit`` with arguments sharded on a mesh, as :func:`jaxrnn.train.fit`
    shards batches, of ``Auto`` or ``Explicit`` axes): the custom call has no
    partitioning rule, so XLA would run it on the whole batch on every device. (The
    primitives' results are sharded over the batch as ``x`` is, ``_aval``, so that
    ``Explicit`` axes keep the batch sharded through them.)"""
    call = mlir.lower_fun(impl, multiple_results=True)
    xla = mlir.lower_fun(reference, multiple_results=True)

    def rule(ctx, *args, **params):
        axes = ctx.module_context.axis_context
        spmd = getattr(axes, "num_devices", 1) > 1 and not hasattr(axes, "manual_axes")
        return (xla if spmd else call)(ctx, *args, **params)

    return rule


for _p, _abstract, _impl, _ref in (
    (forward_p, _forward_abstract, _forward_impl, _forward_reference),
    (tangent_p, _tangent_abstract, _tangent_impl, _tangent_impl),
    (backward_p, _backward_abstract, _backward_impl, _backward_reference),
):
    _p.def_abstract_eval(_abstract)
    _p.def_impl(_impl)
    mlir.register_lowering(_p, _lowering(_impl, _ref))


def _forward_jvp(primals, tangents, *, spec, reverse, training):
    # Differentiated: the training forward, whose workspace the backward reads.
    outs = forward_p.bind(*primals, spec=spec, reverse=reverse, training=True)
    tangents = [ad.instantiate_zeros(t) for t in tangents]
    # The tangent map keeps the primals and the stamp (not y, hT, cT: the backward reads
    # the forward's workspace), and so does its transpose, the backward call.
    touts = tangent_p.bind(*primals, outs[3], *tangents, spec=spec, reverse=reverse)
    return outs, [*touts, ad.Zero(jax.typeof(outs[3]).to_tangent_aval())]


def _tangent_transpose(cts, *args, spec, reverse):
    residuals, linear = args[:7], args[7:]
    cts = [ad.instantiate_zeros(c) for c in cts]
    grads = backward_p.bind(*residuals, *cts, spec=spec, reverse=reverse)
    return [None] * 7 + [g if ad.is_undefined_primal(a) else None for a, g in zip(linear, grads)]


def _jvp_of(impl):
    """JVP rule of a primitive through JAX's derivative of its XLA-path ``impl``."""

    def rule(primals, tangents, **params):
        tangents = [ad.instantiate_zeros(t) for t in tangents]
        return jax.jvp(functools.partial(impl, **params), tuple(primals), tuple(tangents))

    return rule


ad.primitive_jvps[forward_p] = _forward_jvp
ad.primitive_jvps[tangent_p] = _jvp_of(_tangent_impl)
ad.primitive_jvps[backward_p] = _jvp_of(_backward_reference)
ad.primitive_transposes[tangent_p] = _tangent_transpose


def _vmap_of(impl, nout):
    """Batching rule: ``jax.vmap`` of the primitive's XLA-path ``impl``."""

    def rule(args, dims, **params):
        out = jax.vmap(functools.partial(impl, **params), in_axes=tuple(dims))(*args)
        return out, [0] * nout

    return rule


def _fold(a, d, size: int, axis: int):
    """Merge a ``vmap`` dimension ``d`` (``None``: broadcast) into the batch axis
    ``axis`` (0 of ``x``, 1 of the states)."""
    if d is None:
        a = jnp.broadcast_to(a, (size, *a.shape))
        d = 0
    a = jnp.moveaxis(a, d, axis)
    return a.reshape(*a.shape[:axis], -1, *a.shape[axis + 2 :])


def _forward_batch(args, dims, *, spec, reverse, training):
    x, wl, wi, bias, h0, c0 = args
    dx, dwl, dwi, dbias, dh0, dc0 = dims
    size = next(a.shape[d] for a, d in zip(args, dims) if d is not None)
    if any(d is not None for d in (dwl, dwi, dbias)) or not isinstance(size, int):
        # A batch of models, or a symbolic batch (jax.export): the XLA path.
        return _vmap_of(_forward_reference, 4)(
            args, dims, spec=spec, reverse=reverse, training=training
        )
    x = _fold(x, dx, size, 0)
    h0, c0 = _fold(h0, dh0, size, 1), _fold(c0, dc0, size, 1)
    outs = forward_p.bind(x, wl, wi, bias, h0, c0, spec=spec, reverse=reverse, training=training)
    y = outs[0].reshape(size, -1, *outs[0].shape[1:])
    hT, cT = (a.reshape(a.shape[0], size, -1, *a.shape[2:]) for a in outs[1:3])
    return [y, hT, cT, outs[3]], [0, 1, 1, None]


batching.primitive_batchers[forward_p] = _forward_batch
batching.primitive_batchers[tangent_p] = _vmap_of(_tangent_impl, 3)
batching.primitive_batchers[backward_p] = _vmap_of(_backward_reference, 6)


# ------------------------------------------------------------------------ entry point


def sequences(spec, ws, xs, h0s, s0s, reverses):
    """One example, ``D`` layers of one kind over the same ``xs (T, I)`` in one call:
    layer ``d`` has weights ``ws[d]``, initial ``h0s[d] (H,)`` and ``s0s[d]`` (the LSTM's
    ``c0 (H,)`` or ``None``) and runs right to left where ``reverses[d]``. Returns the
    final states ``[(h_T, s_T)]`` (one per layer, ``s_T`` ``None`` where ``s0s[d]`` is)
    and the outputs ``ys (T, D, H)``."""
    wl, wi, bias = (jnp.stack(a) for a in zip(*(_to_onednn(spec.onednn, w) for w in ws)))
    h0 = jnp.stack(h0s)[:, None]
    c0 = jnp.stack([jnp.zeros_like(h) if s is None else s for h, s in zip(h0s, s0s)])[:, None]
    reverse = tuple(bool(r) for r in reverses)
    y, hT, cT, _ = forward_p.bind(
        xs[None], wl, wi, bias, h0, c0, spec=spec, reverse=reverse, training=False
    )
    states = [(hT[d, 0], None if s is None else cT[d, 0]) for d, s in enumerate(s0s)]
    return states, y[0]


def sequence(spec, w, xs, h0, s0, reverse: bool):
    """One example: ``xs (T, I)``, ``h0 (H,)``, ``s0`` (the LSTM's ``c0 (H,)`` or
    ``None``) -> ``((h_T, s_T), ys (T, H))``, as the XLA path's ``core`` returns them."""
    (state,), ys = sequences(spec, [w], xs, [h0], [s0], [reverse])
    return state, ys[:, 0]
