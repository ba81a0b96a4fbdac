"""jaxrnn against peer libraries on the same model with the same weights.

Peers: ``torch.nn.LSTM/GRU`` (on CPU with 1 thread and with all cores, best of both is
"torch"; on CUDA, cuDNN), flax linen ``nn.RNN`` over ``nn.OptimizedLSTMCell`` /
``nn.GRUCell`` (``nn.Bidirectional`` for the bidirectional model) and equinox
``eqx.nn.LSTMCell`` / ``GRUCell`` with ``jax.lax.scan`` and ``jax.vmap``. The jaxrnn
side is ``jaxrnn.nn.LSTM`` / ``jaxrnn.nn.GRU`` (``batch_first=True``) under ``jax.jit``.

For every case ``(B, T, I, H)`` and model, the jaxrnn params are converted to each
peer's layout and the outputs, the gradients of ``sum(output)`` with respect to every
parameter and the input, and the loss of the first train step are checked against
jaxrnn's (float32, max |peer - jaxrnn| / max |jaxrnn| per tensor below ``--tol``)
before anything is timed. Layout mapping (jaxrnn uses PyTorch's layout, gates
``i, f, g, o`` for the LSTM and ``r, z, n`` for the GRU):

- torch: identical names and shapes (``jaxrnn.state_dict``).
- flax ``OptimizedLSTMCell``: per gate ``j``, ``i{j}.kernel = W_ih[j].T`` (no bias),
  ``h{j}.kernel = W_hh[j].T``, ``h{j}.bias = b_ih[j] + b_hh[j]``; carry ``(c, h)``.
- flax ``GRUCell``: ``i{r,z,n}.kernel = W_ih[.].T`` with bias ``b_ir + b_hr``,
  ``b_iz + b_hz``, ``b_in``; ``h{r,z,n}.kernel = W_hh[.].T``, only ``hn`` has a bias,
  ``b_hn`` (inside the reset product, as in torch): torch's GRU is represented exactly.
- equinox ``LSTMCell``: ``weight_ih = W_ih``, ``weight_hh = W_hh``,
  ``bias = b_ih + b_hh``; carry ``(h, c)``.
- equinox ``GRUCell``: ``bias = [b_ir + b_hr, b_iz + b_hz, b_in]``, ``bias_n = b_hn``.

Where a peer has one bias for two of torch's, its gradient is compared with the
gradients of both (d loss / d b_ih = d loss / d b_hh there).

Measured per case and model, in interleaved rounds (every library once per round;
each measurement is one warm-up call then the median of several calls; the reported
number is the best of the rounds' medians): ``fwd`` (outputs), ``fwd+bwd`` (gradient
of ``sum(output)`` w.r.t. params and input) and ``train`` (one Adam step on
``mean(output**2)``: jitted ``value_and_grad`` + ``optax.adam`` with donated buffers;
torch ``loss.backward(); opt.step()``). Compile time = first call minus the steady
state. Roofline: GEMM FLOPs per call (forward ``2 B T (I_k + H) G H`` per layer and
direction, backward twice that) per second, as a fraction of the best of a jitted
``jnp.dot`` and a ``torch.mm`` of square float32 matrices measured in the same run.
Training-loop overhead: ``jaxrnn.train.fit`` as ``jaxrnn train`` calls it on the
default task (GRU-32 on MNIST-1D; evaluation and checkpoints left out) against a bare
Python loop over the same jitted train step, batches and keys.

Usage::

    python benchmarks/bench_peers.py                     # all cases, ~15 min on 2 CPU cores
    python benchmarks/bench_peers.py --quick             # one small case, one round
    python benchmarks/bench_peers.py --cases a,c --models lstm,gru --rounds 5
    python benchmarks/bench_peers.py --replot            # redraw .md/.png from the .csv

Writes ``benchmarks/results/peers.{csv,md,png}`` and prints the command line.
"""

from __future__ import annotations

import argparse
import copy
import csv
import dataclasses
import math
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # share a GPU with torch

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import jaxrnn

RESULTS = os.path.join(os.path.dirname(__file__), "results")
CASES = {  # name: (B, T, I, H)
    "a": (32, 100, 64, 128),
    "b": (64, 200, 128, 256),
    "c": (1, 1000, 32, 64),
    "d": (256, 50, 256, 512),
    "quick": (8, 20, 16, 32),
}
MODELS = {  # name: (cell, num_layers, bidirectional, cases it runs on; None = all)
    "lstm": ("lstm", 1, False, None),
    "gru": ("gru", 1, False, None),
    "bilstm2": ("lstm", 2, True, ("a", "quick")),
}
MODES = {"fwd": "forward", "grad": "forward + backward", "train": "train step (Adam)"}
LR = 1e-3
CSV_KEYS = ["section", "case", "model", "mode", "lib", "round", "value", "repeats", "samples"]


@dataclasses.dataclass(frozen=True)
class Spec:
    case: str
    model: str

    @property
    def shape(self):
        return CASES[self.case]

    @property
    def cell(self):
        return MODELS[self.model][0]

    @property
    def layers(self):
        return MODELS[self.model][1]

    @property
    def bidirectional(self):
        return MODELS[self.model][2]

    @property
    def directions(self):
        return 2 if self.bidirectional else 1

    @property
    def gates(self):
        return 4 if self.cell == "lstm" else 3

    def jaxrnn_layer(self):
        _, _, I, H = self.shape
        cls = jaxrnn.nn.LSTM if self.cell == "lstm" else jaxrnn.nn.GRU
        return cls(I, H, self.layers, batch_first=True, bidirectional=self.bidirectional)

    def gflop(self, mode):
        """GEMM GFLOPs of one call: forward ``2 B T (I_k + H) G H`` per layer-direction."""
        B, T, I, H = self.shape
        fwd = sum(
            2 * B * T * ((I if k == 0 else self.directions * H) + H) * self.gates * H
            for k in range(self.layers)
        )
        fwd *= self.directions
        return fwd * (1 if mode == "fwd" else 3) / 1e9


@dataclasses.dataclass
class Impl:
    """One library's three timed calls for one spec; each call runs and blocks."""

    fwd: Callable[[], Any]
    grad: Callable[[], Any]
    train: Callable[[], Any]
    grads_to_jaxrnn: Callable[[Any], Any]  # grad() result -> (jaxrnn-layout grads, x grad)
    before: Callable[[], None] = lambda: None  # run before timing (torch thread count)


def block(tree):
    return jax.block_until_ready(tree)


# ------------------------------------------------------------------------ JAX libraries


def jax_impl(apply, p, x, grads_to_jaxrnn) -> Impl:
    """Jitted forward, gradient of ``sum(output)`` and Adam step of ``apply(p, x)``."""
    opt = optax.adam(LR)

    def loss(p, x):
        return jnp.mean(jnp.square(apply(p, x)))

    def step(p, s, x):
        value, g = jax.value_and_grad(loss)(p, x)
        updates, s = opt.update(g, s, p)
        return optax.apply_updates(p, updates), s, value

    fwd = jax.jit(apply)
    grad = jax.jit(jax.grad(lambda p, x: jnp.sum(apply(p, x)), argnums=(0, 1)))
    train = jax.jit(step, donate_argnums=(0, 1))
    state = [jax.tree_util.tree_map(jnp.copy, p), opt.init(p)]  # donated, so p stays valid

    def run_train():
        state[0], state[1], value = train(state[0], state[1], x)
        return block((state[0], value))[1]

    return Impl(
        fwd=lambda: block(fwd(p, x)),
        grad=lambda: block(grad(p, x)),
        train=run_train,
        grads_to_jaxrnn=lambda g: (grads_to_jaxrnn(g[0]), g[1]),
    )


def make_jaxrnn(spec, params, x_np, device):
    layer = spec.jaxrnn_layer()
    return jax_impl(lambda p, x: layer.apply(p, x)[0], params, jnp.asarray(x_np), lambda g: g)


def _blocks(a, n):
    return jnp.split(a, n)


def make_flax(spec, params, x_np, device):
    import flax.linen as nn

    cell_cls = nn.OptimizedLSTMCell if spec.cell == "lstm" else nn.GRUCell
    H = spec.shape[3]

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            for k in range(spec.layers):
                rnns = [nn.RNN(cell_cls(H, name=f"cell{k}{d}")) for d in range(spec.directions)]
                x = nn.Bidirectional(*rnns)(x) if spec.bidirectional else rnns[0](x)
            return x

    def to_flax(p):  # one layer-direction
        w_ih, w_hh = _blocks(p.w_ih, spec.gates), _blocks(p.w_hh, spec.gates)
        b_ih, b_hh = _blocks(p.b_ih, spec.gates), _blocks(p.b_hh, spec.gates)
        out = {}
        if spec.cell == "lstm":
            for j, g in enumerate("ifgo"):
                out[f"i{g}"] = {"kernel": w_ih[j].T}
                out[f"h{g}"] = {"kernel": w_hh[j].T, "bias": b_ih[j] + b_hh[j]}
            return out
        for j, g in enumerate("rzn"):
            out[f"i{g}"] = {"kernel": w_ih[j].T, "bias": b_ih[j] + (b_hh[j] if g != "n" else 0)}
            out[f"h{g}"] = {"kernel": w_hh[j].T}
        out["hn"]["bias"] = b_hh[2]
        return out

    def from_flax(f, p):  # flax grads of one layer-direction -> jaxrnn layout like p
        names = "ifgo" if spec.cell == "lstm" else "rzn"
        w_ih = jnp.concatenate([f[f"i{g}"]["kernel"].T for g in names])
        w_hh = jnp.concatenate([f[f"h{g}"]["kernel"].T for g in names])
        if spec.cell == "lstm":
            b = jnp.concatenate([f[f"h{g}"]["bias"] for g in names])
            return p._replace(w_ih=w_ih, w_hh=w_hh, b_ih=b, b_hh=b)
        b_ih = jnp.concatenate([f[f"i{g}"]["bias"] for g in names])
        b_hh = jnp.concatenate([f["ir"]["bias"], f["iz"]["bias"], f["hn"]["bias"]])
        return p._replace(w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh)

    net = Net()
    x = jnp.asarray(x_np)
    variables = {
        "params": {
            f"cell{k}{d}": to_flax(params[k][d])
            for k in range(spec.layers)
            for d in range(spec.directions)
        }
    }
    expect = jax.eval_shape(net.init, jax.random.key(0), x)
    same = jax.tree_util.tree_map(lambda a, b: a.shape == b.shape, variables, expect)
    assert all(jax.tree_util.tree_leaves(same)), "flax parameter layout mismatch"

    def grads_to_jaxrnn(g):
        g = g["params"]
        return tuple(
            tuple(from_flax(g[f"cell{k}{d}"], params[k][d]) for d in range(spec.directions))
            for k in range(spec.layers)
        )

    return jax_impl(net.apply, variables, x, grads_to_jaxrnn)


def make_equinox(spec, params, x_np, device):
    import equinox as eqx

    H = spec.shape[3]
    lstm = spec.cell == "lstm"

    def to_eqx(p):
        cls = eqx.nn.LSTMCell if lstm else eqx.nn.GRUCell
        cell = cls(p.w_ih.shape[1], H, key=jax.random.key(0))
        if lstm:
            return eqx.tree_at(
                lambda c: (c.weight_ih, c.weight_hh, c.bias),
                cell,
                (p.w_ih, p.w_hh, p.b_ih + p.b_hh),
            )
        bias = jnp.concatenate([p.b_ih[: 2 * H] + p.b_hh[: 2 * H], p.b_ih[2 * H :]])
        return eqx.tree_at(
            lambda c: (c.weight_ih, c.weight_hh, c.bias, c.bias_n),
            cell,
            (p.w_ih, p.w_hh, bias, p.b_hh[2 * H :]),
        )

    def from_eqx(c, p):
        if lstm:
            return p._replace(w_ih=c.weight_ih, w_hh=c.weight_hh, b_ih=c.bias, b_hh=c.bias)
        b_hh = jnp.concatenate([c.bias[: 2 * H], c.bias_n])
        return p._replace(w_ih=c.weight_ih, w_hh=c.weight_hh, b_ih=c.bias, b_hh=b_hh)

    def direction(cell, xs, reverse):
        zeros = jnp.zeros((H,), xs.dtype)

        def body(carry, x):
            carry = cell(x, carry)
            return carry, carry[0] if lstm else carry

        return jax.lax.scan(body, (zeros, zeros) if lstm else zeros, xs, reverse=reverse)[1]

    def apply(cells, x):
        def one(xs):  # (T, I)
            for layer in cells:
                xs = jnp.concatenate([direction(c, xs, d == 1) for d, c in enumerate(layer)], -1)
            return xs

        return jax.vmap(one)(x)

    cells = tuple(tuple(to_eqx(p) for p in layer) for layer in params)

    def grads_to_jaxrnn(g):
        return tuple(tuple(from_eqx(c, p) for c, p in zip(gl, pl)) for gl, pl in zip(g, params))

    return jax_impl(apply, cells, jnp.asarray(x_np), grads_to_jaxrnn)


# ------------------------------------------------------------------------------- torch


def torch_device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def torch_variants():
    """``{lib name: threads}``: 1 thread and all cores on CPU; one entry on CUDA."""
    if torch_device().type == "cuda":
        return {"torch": None}
    return {f"torch-{n}t": n for n in sorted({1, os.cpu_count() or 1})}


def make_torch(spec, params, x_np, device, threads):
    import torch

    _, _, I, H = spec.shape
    cls = torch.nn.LSTM if spec.cell == "lstm" else torch.nn.GRU
    layer = spec.jaxrnn_layer()
    module = cls(I, H, spec.layers, batch_first=True, bidirectional=spec.bidirectional)
    sd = jaxrnn.state_dict(layer, params)
    module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in sd.items()})
    module = module.to(device)
    trained = copy.deepcopy(module)
    opt = torch.optim.Adam(trained.parameters(), lr=LR)
    x = torch.from_numpy(np.array(x_np)).to(device)
    x_req = x.clone().requires_grad_(True)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def fwd():
        with torch.no_grad():
            y = module(x)[0]
        sync()
        return y

    def grad():
        module.zero_grad(set_to_none=True)
        x_req.grad = None
        module(x_req)[0].sum().backward()
        sync()
        return {n: p.grad for n, p in module.named_parameters()}, x_req.grad

    def train():
        opt.zero_grad(set_to_none=True)
        loss = trained(x)[0].square().mean()
        loss.backward()
        opt.step()
        sync()
        return loss

    def grads_to_jaxrnn(g):
        named, gx = g
        numpy = {n: t.detach().cpu().numpy() for n, t in named.items()}
        return jaxrnn.load_state_dict(layer, numpy), gx.detach().cpu().numpy()

    before = (lambda: torch.set_num_threads(threads)) if threads else (lambda: None)
    return Impl(fwd, grad, train, grads_to_jaxrnn, before)


def builders():
    out = {"jaxrnn": make_jaxrnn}
    for name, threads in torch_variants().items():
        out[name] = lambda *a, threads=threads: make_torch(*a, threads=threads)
    out["flax"] = make_flax
    out["equinox"] = make_equinox
    return out


# ----------------------------------------------------------------------------- measure


def to_numpy(a):
    if hasattr(a, "detach"):
        a = a.detach().cpu()
    return np.asarray(a, dtype=np.float64)


def rel_err(got, want):
    """Max over tensors of ``max |got - want| / max |want|``."""
    errs = [
        float(np.max(np.abs(to_numpy(g) - to_numpy(w))) / max(np.max(np.abs(to_numpy(w))), 1e-30))
        for g, w in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want))
    ]
    return max(errs)


def timed(fn, repeats, warmup=True):
    if warmup:  # caches and thread pools after another library ran
        fn()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return samples


def setup_spec(spec, libs, tol, budget, rows, device):
    """Build every library, time the first calls, check against jaxrnn; return impls."""
    B, T, I, _ = spec.shape
    layer = spec.jaxrnn_layer()
    params = layer.init(jax.random.key(0))
    x_np = np.random.default_rng(0).standard_normal((B, T, I)).astype(np.float32)
    impls, reps, ref = {}, {}, {}
    for lib, build in libs.items():
        impl = build(spec, params, x_np, device)
        impl.before()
        impls[lib] = impl
        for mode in MODES:
            fn = getattr(impl, mode)
            t0 = time.perf_counter()
            out = fn()
            first = time.perf_counter() - t0
            t0 = time.perf_counter()
            fn()
            est = time.perf_counter() - t0
            reps[lib, mode] = (
                int(min(25, max(3, math.ceil(budget / max(est, 1e-9))))),
                est < 0.25,  # warm up before timing (not worth it for slow calls)
            )
            rows.append(row("first_call", spec, mode, lib, value=1e3 * first))
            if mode == "grad":
                out = impl.grads_to_jaxrnn(out)
            if lib == "jaxrnn":
                ref[mode] = out
                continue
            err = rel_err(out, ref[mode])
            rows.append(row("check", spec, mode, lib, value=err))
            if not err <= tol:
                raise AssertionError(
                    f"{lib} disagrees with jaxrnn on {spec} {mode}: relative error {err:.2e}"
                )
        print(f"  {spec.case}/{spec.model} {lib}: built, compiled, checked", flush=True)
    return impls, reps


def gemm_gflops(n, repeats=10):
    """GFLOP/s of a jitted ``jnp.dot`` and of ``torch.mm`` (per torch variant), n x n f32.

    From the fastest of ``repeats`` calls: the attainable peak, the roofline's 100 %.
    """
    import torch

    rng = np.random.default_rng(1)
    a, b = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
    dot = jax.jit(jnp.dot)
    ja, jb = jnp.asarray(a), jnp.asarray(b)
    device = torch_device()
    ta, tb = torch.from_numpy(a).to(device), torch.from_numpy(b).to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def tmm(threads):
        if threads:
            torch.set_num_threads(threads)
        torch.mm(ta, tb)
        sync()

    fns = {"jax": lambda: block(dot(ja, jb))}
    for name, threads in torch_variants().items():
        fns[name] = lambda threads=threads: tmm(threads)
    out = {}
    for lib, fn in fns.items():
        s = timed(fn, repeats)
        out[lib] = (2 * n**3 / min(s) / 1e9, s)
    return out


def row(section, spec=None, mode="", lib="", rnd="", value="", repeats="", samples=()):
    return {
        "section": section,
        "case": spec.case if spec else "",
        "model": spec.model if spec else "",
        "mode": mode,
        "lib": lib,
        "round": rnd,
        "value": value,
        "repeats": repeats,
        "samples": ";".join(f"{1e3 * s:.4g}" for s in samples),
    }


# ----------------------------------------------------------------- training-loop overhead


def bench_train_loop(segments, seg_steps, warmup, rounds, rows):
    """ms/step of ``fit`` (as ``jaxrnn train`` calls it) and a bare loop, same step/data.

    Both block every ``seg_steps`` steps after ``warmup`` and time each segment; a
    round's number is the median segment, the result the best round.
    """
    from jaxrnn.runs import prepare_run, run_config
    from jaxrnn.train import batch_sampler, fit, make_train_step

    run = prepare_run(run_config())  # what `jaxrnn train` with no options trains
    cfg, data, model, loss_fn, optimizer = run.cfg, run.data, run.model, run.loss_fn, run.optimizer
    key_init, key_train = jax.random.split(jax.random.key(cfg["seed"]))
    params0 = model.init(key_init)
    batch_size = min(cfg["batch_size"], len(data.train["y"]))
    desc = f"{cfg['task']}/{cfg['cell']}-{cfg['hidden']}"
    steps = warmup + segments * seg_steps

    def boundary(done):
        return done >= warmup and (done - warmup) % seg_steps == 0

    def run_fit(stamps):
        def callback(done, state, record):
            if boundary(done):
                block(state.params)
                stamps.append(time.perf_counter())

        return fit(
            loss_fn,
            params0,
            data.train,
            steps=steps,
            key=key_train,
            optimizer=optimizer,
            batch_size=batch_size,
            data_seed=cfg["seed"],
            callback=callback,
            progress=True,
            desc=desc,
        ).params

    def run_bare(stamps):
        step = make_train_step(loss_fn, optimizer)
        sample = batch_sampler(data.train, batch_size, cfg["seed"])
        batches = [jax.device_put(sample(s)) for s in range(steps)]
        key, subs = key_train, []
        for _ in range(steps):
            key, sub = jax.random.split(key)
            subs.append(sub)
        params, opt_state = params0, optimizer.init(params0)
        for s in range(steps):
            params, opt_state, _ = step(params, opt_state, batches[s], subs[s])
            if boundary(s + 1):
                block(params)
                stamps.append(time.perf_counter())
        return params

    loops = [("fit", run_fit), ("bare", run_bare)]
    for r in range(rounds):
        finals = {}
        for lib, fn in loops if r % 2 == 0 else loops[::-1]:
            stamps = []
            finals[lib] = fn(stamps)
            per_step = np.diff(stamps) / seg_steps  # seconds per step, one per segment
            ms = 1e3 * float(np.median(per_step))
            rows.append(row("loop", None, desc, lib, r, ms, seg_steps, per_step))
            print(f"  train loop round {r}: {lib} {ms:.3f} ms/step", flush=True)
        same = all(
            bool(jnp.array_equal(a, b))
            for a, b in zip(*(jax.tree_util.tree_leaves(finals[k]) for k in ("fit", "bare")))
        )
        rows.append(row("loop_identical", None, desc, "fit=bare", r, int(same)))


# --------------------------------------------------------------------------------- main


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one small case, one round (smoke)")
    ap.add_argument("--cases", default="a,b,c,d", help=f"comma-separated of {sorted(CASES)}")
    ap.add_argument("--models", default="lstm,gru,bilstm2", help=f"of {sorted(MODELS)}")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    ap.add_argument("--budget", type=float, default=0.3, help="seconds per measurement")
    ap.add_argument("--tol", type=float, default=1e-4, help="max relative error of checks")
    ap.add_argument(
        "--loop-segments", type=int, default=8, help="100-step segments per loop run (0: skip)"
    )
    ap.add_argument(
        "--reuse-freed-memory",
        action="store_true",
        help="call jaxrnn.host.reuse_freed_memory() first (the whole process: every "
        "library keeps its freed buffers mapped)",
    )
    ap.add_argument("--out", default=RESULTS)
    ap.add_argument("--replot", action="store_true", help="rewrite .md/.png from the .csv")
    ap.add_argument(
        "--loop-only",
        action="store_true",
        help="measure only the training loop, replacing its rows in the existing .csv",
    )
    args = ap.parse_args(argv)
    # Before JAX starts; the whole process (every library) shares the setting.
    malloc = "glibc defaults"
    if args.reuse_freed_memory and jaxrnn.host.reuse_freed_memory():
        malloc = "jaxrnn.host.reuse_freed_memory()"
    csv_path = os.path.join(args.out, "peers.csv")
    rounds = 1 if args.quick else args.rounds
    if args.replot or args.loop_only:
        with open(csv_path) as fh:
            rows = list(csv.DictReader(fh))
        if args.loop_only:  # e.g. after a run that stopped in the loop section
            rows = [r for r in rows if r["section"] != "loop"]
            bench_train_loop(*loop_args(args), rounds, rows)
            save_csv(rows, csv_path)
        write_report([{k: str(v) for k, v in r.items()} for r in rows], args.out)
        return
    command = " ".join(
        ["python", "benchmarks/bench_peers.py", *(sys.argv[1:] if argv is None else argv)]
    )
    cases = ["quick"] if args.quick else args.cases.split(",")
    budget = 0.05 if args.quick else args.budget
    loop = loop_args(args)
    for c in cases:
        if c not in CASES:
            ap.error(f"unknown case {c!r}; known: {sorted(CASES)}")
    models = args.models.split(",")
    for m in models:
        if m not in MODELS:
            ap.error(f"unknown model {m!r}; known: {sorted(MODELS)}")

    import torch

    device = torch_device()
    if device.type == "cuda" or jax.default_backend() == "gpu":
        # Full float32 on both sides (no TF32), so that the checks hold at --tol.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        jax.config.update("jax_default_matmul_precision", "highest")
    warnings.filterwarnings("ignore", message="Some donated buffers were not usable")
    import equinox
    import flax

    rows = [
        row("meta", mode="command", lib=command),
        row("meta", mode="device", lib=device_string(device)),
        row(
            "meta",
            mode="versions",
            lib=f"jax {jax.__version__}, torch {torch.__version__}, flax {flax.__version__}, "
            f"equinox {equinox.__version__}, optax {optax.__version__}",
        ),
        row("meta", mode="tol", lib=str(args.tol)),
        row("meta", mode="malloc", lib=malloc),
        row("meta", mode="engine", lib=engine_string()),
    ]
    gemm_n = 1024 if jax.default_backend() == "cpu" else 4096
    rows.append(row("meta", mode="gemm_n", lib=str(gemm_n)))
    specs = [Spec(c, m) for c in cases for m in models if MODELS[m][3] is None or c in MODELS[m][3]]
    libs = builders()
    print(f"{command}\n{device_string(device)}; libraries {list(libs)}", flush=True)
    setups = {}
    for spec in specs:
        setups[spec] = setup_spec(spec, libs, args.tol, budget, rows, device)

    def gemm(r):
        for lib, (gflops, samples) in gemm_gflops(gemm_n).items():
            rows.append(row("gemm", None, "", lib, r, gflops, len(samples), samples))

    for r in range(rounds):
        for spec in specs:
            # The GEMM reference is sampled as often as the models (before every block;
            # the fastest call counts): on a shared machine the cores free for this
            # process change by the minute, and best-of-rounds model times find the quiet
            # moments, so a reference measured only now and then would be too low.
            gemm(r)
            impls, reps = setups[spec]
            for mode in MODES:
                line = []
                names = list(impls)  # rotate so no library always runs right after another
                for lib in names[r % len(names) :] + names[: r % len(names)]:
                    impl = impls[lib]
                    impl.before()
                    s = timed(getattr(impl, mode), *reps[lib, mode])
                    ms = 1e3 * statistics.median(s)
                    rows.append(row("time", spec, mode, lib, r, ms, len(s), s))
                    line.append(f"{lib} {ms:.3g}")
                print(f"round {r} {spec.case}/{spec.model} {mode}: " + ", ".join(line), flush=True)
        gemm(r)
        save_csv(rows, csv_path)  # after every round: a killed run keeps what it measured
    del setups
    if loop[0]:
        bench_train_loop(*loop, rounds, rows)
    save_csv(rows, csv_path)
    write_report([{k: str(v) for k, v in r.items()} for r in rows], args.out)


def loop_args(args):
    """(segments, steps per segment, warm-up steps) of the training-loop measurement."""
    return (4, 20, 10) if args.quick else (args.loop_segments, 100, 50)


def save_csv(rows, path):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, CSV_KEYS)
        w.writeheader()
        w.writerows(rows)


def device_string(device):
    cpu = platform.processor() or platform.machine()
    jax_dev = jax.devices()[0]
    return (
        f"jax on {jax_dev.platform} ({getattr(jax_dev, 'device_kind', '')}), torch on {device}; "
        f"host {cpu}, {os.cpu_count()} cores"
    )


# ------------------------------------------------------------------------------ report


def aggregate(rows):
    """Best-of-rounds medians: ``{(case, model, mode, lib): ms}`` and friends."""
    best, first, check, gemm, loop, ident = {}, {}, {}, {}, {}, []
    meta = {}
    for r in rows:
        s, v = r["section"], r["value"]
        key = (r["case"], r["model"], r["mode"], r["lib"])
        if s == "time":
            best[key] = min(best.get(key, math.inf), float(v))
        elif s == "first_call":
            first[key] = float(v)
        elif s == "check":
            check[key] = float(v)
        elif s == "gemm":
            gemm[r["lib"]] = max(gemm.get(r["lib"], 0.0), float(v))
            meta["gemm_samples"] = meta.get("gemm_samples", 0) + 1
        elif s == "loop":
            loop.setdefault(r["lib"], []).append(float(v))
            loop["desc"] = r["mode"]
            loop["seg_steps"] = r["repeats"]
            loop["segments"] = len(r["samples"].split(";"))
        elif s == "loop_identical":
            ident.append(v in ("1", "True"))
        elif s == "meta":
            meta[r["mode"]] = r["lib"]
    return best, first, check, gemm, loop, ident, meta


def libs_of(best):
    order = ["jaxrnn", "torch", "torch-1t", "torch-2t", "flax", "equinox"]
    present = {k[3] for k in best}
    return [lib for lib in order if lib in present] + sorted(present - set(order))


def peer_best(best, case, model, mode, libs):
    """(name, ms) of the fastest peer; the torch variants count as one, "torch"."""
    times = {lib: best[case, model, mode, lib] for lib in libs if lib != "jaxrnn"}
    name = min(times, key=times.get)
    return name, times[name]


def fmt(ms):
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def engine_string() -> str:
    """Which path jaxrnn's float32 LSTM and GRU take in this run (README, engine)."""
    from jaxrnn.cells import _onednn

    if jax.default_backend() != "cpu":
        return "the XLA path"
    if _onednn.active():
        return "oneDNN (the default on CPU)"
    why = "off: JAXRNN_ONEDNN=0" if _onednn.available() else "not built"
    return f"the XLA path (oneDNN {why})"


def write_report(rows, out):
    best, first, check, gemm, loop, ident, meta = aggregate(rows)
    specs = list(dict.fromkeys((k[0], k[1]) for k in best))
    libs = libs_of(best)
    peers = [lib for lib in libs if lib != "jaxrnn"]
    torch_libs = [lib for lib in peers if lib.startswith("torch")]
    gemm_best = max(gemm.values()) if gemm else math.nan
    L = [
        "# jaxrnn against torch, flax and equinox (same models, same weights)",
        "",
        f"Command: `{meta.get('command', '?')}`  ",
        f"Device: {meta.get('device', '?')}  ",
        f"Versions: {meta.get('versions', '?')}. float32.  ",
        f"Host memory (all libraries, one process): {meta.get('malloc', 'glibc defaults')}.  ",
        f"jaxrnn's LSTM/GRU: {meta.get('engine', 'the XLA path')}.",
        "",
        "Times in ms per call: best over interleaved rounds of the median of repeated calls.",
        f"Peers: {', '.join(peers)}"
        + (" (torch with 1 thread and with all cores)" if len(torch_libs) > 1 else "")
        + ". *best peer* is the fastest of them; *ratio* = jaxrnn / best peer (< 1: jaxrnn"
        " faster). Before timing, every peer got jaxrnn's weights converted to its layout and"
        f" matched jaxrnn's outputs, gradients and first train-step loss to {meta.get('tol')}"
        " (max |peer - jaxrnn| / max |jaxrnn| per tensor; section *Checks*).",
        "",
        "Models: `lstm`, `gru` (1 layer), `bilstm2` (2-layer bidirectional LSTM). Modes: "
        "`fwd` (outputs), `fwd+bwd` (gradient of sum(output) w.r.t. every parameter and the "
        "input), `train` (one Adam step on mean(output^2), jitted with donated buffers; "
        "torch: `backward()` + `opt.step()`).",
    ]
    for mode, title in MODES.items():
        L += [
            "",
            f"## {title} (ms)",
            "",
            "| case | B, T, I, H | model | " + " | ".join(libs) + " | best peer | ratio |",
            "|---|---|---|" + "---|" * (len(libs) + 2),
        ]
        for case, model in specs:
            name, ms = peer_best(best, case, model, mode, libs)
            ours = best[case, model, mode, "jaxrnn"]
            cells = [fmt(best[case, model, mode, lib]) for lib in libs]
            shape = ", ".join(map(str, CASES[case]))
            L.append(
                f"| {case} | {shape} | {model} | "
                + " | ".join(cells)
                + f" | {name} | **{ours / ms:.2f}** |"
            )
    L += [
        "",
        "## Compile time (s): first call minus steady state, fwd / fwd+bwd / train",
        "",
        "torch has nothing to compile; its column is the first call's extra cost (warm-up).",
        "",
        "| case | model | " + " | ".join(libs) + " |",
        "|---|---|" + "---|" * len(libs),
    ]
    for case, model in specs:
        cells = []
        for lib in libs:
            parts = [(first[case, model, m, lib] - best[case, model, m, lib]) / 1e3 for m in MODES]
            cells.append(" / ".join(f"{p:.2f}" for p in parts))
        L.append(f"| {case} | {model} | " + " | ".join(cells) + " |")
    gemm_txt = ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in gemm.items())
    L += [
        "",
        "## Roofline",
        "",
        f"GEMM throughput in this run ({meta.get('gemm_n')}x{meta.get('gemm_n')} float32, "
        f"fastest call, sampled {meta.get('gemm_samples', 0) // max(len(gemm), 1)} times per "
        f"library through the run): {gemm_txt}; the best, {gemm_best:.0f} GFLOP/s, is 100 %. "
        "FLOPs per call count only the GEMMs: forward 2 B T (I_k + H) G H per layer and "
        "direction (G = 4 LSTM, 3 GRU; I_k = input width of layer k), backward twice that "
        "(fwd+bwd and train = 3x forward).",
        "",
        "| case | model | mode | GFLOP / call | jaxrnn GFLOP/s | jaxrnn % | best peer | "
        "peer GFLOP/s | peer % |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for case, model in specs:
        spec = Spec(case, model)
        for mode in MODES:
            gf = spec.gflop(mode)
            ours = gf / (best[case, model, mode, "jaxrnn"] / 1e3)
            name, ms = peer_best(best, case, model, mode, libs)
            theirs = gf / (ms / 1e3)
            L.append(
                f"| {case} | {model} | {mode} | {gf:.3g} | {ours:.1f} | "
                f"{100 * ours / gemm_best:.1f} | {name} | {theirs:.1f} | "
                f"{100 * theirs / gemm_best:.1f} |"
            )
    L += [
        "",
        "## Checks: max |peer - jaxrnn| / max |jaxrnn| (per tensor, worst tensor)",
        "",
        "`grad` covers every parameter and the input. Where a peer keeps one bias for "
        "torch's two (flax and equinox LSTM: b_ih + b_hh; GRU: r and z blocks), its gradient "
        "is compared with both of jaxrnn's. `train` compares the first step's loss.",
        "",
        "| case | model | peer | fwd | grad | train loss |",
        "|---|---|---|---|---|---|",
    ]
    for case, model in specs:
        for lib in peers:
            errs = [check.get((case, model, m, lib), math.nan) for m in MODES]
            L.append(f"| {case} | {model} | {lib} | " + " | ".join(f"{e:.1e}" for e in errs) + " |")
    if loop.get("fit") and loop.get("bare"):
        fit_ms, bare_ms = min(loop["fit"]), min(loop["bare"])
        per_round = "; ".join(f"{a:.3f} / {b:.3f}" for a, b in zip(loop["fit"], loop["bare"]))
        L += [
            "",
            "## Training-loop overhead (issue 12, item 4)",
            "",
            f"`jaxrnn.train.fit` as `jaxrnn train` calls it on the default task ({loop['desc']}"
            ", batch 100, clip + Adam with cosine decay, tqdm bar on; evaluation and "
            "checkpoints left out) against a bare Python loop calling the same jitted "
            "`make_train_step` on the same batches (staged on the device beforehand) and keys. "
            f"Each run: a warm-up, then {loop['segments']} segments of {loop['seg_steps']} "
            "steps, both loops blocking on the params at each boundary (fit through its "
            "callback); a run's number is its median segment, the table the best run. The "
            "callback makes fit build a `TrainState` every step, so fit is measured slightly "
            "pessimistically.",
            "",
            "| loop | ms / step |",
            "|---|---|",
            f"| fit | {fit_ms:.3f} |",
            f"| bare | {bare_ms:.3f} |",
            f"| overhead | **{100 * (fit_ms / bare_ms - 1):+.1f} %** (target: < 10 %) |",
            "",
            f"Per round (fit / bare, ms): {per_round}. Final parameters of both loops "
            f"bit-identical: {'yes' if ident and all(ident) else 'no'}.",
        ]
    with open(os.path.join(out, "peers.md"), "w") as fh:
        fh.write("\n".join(L) + "\n")
    plot(best, specs, libs, os.path.join(out, "peers.png"))
    print("\n".join(L))
    print(f"wrote {out}/peers.md, peers.png; command: {meta.get('command')}")


def plot(best, specs, libs, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(specs) + 2), 4.2))
    x = np.arange(len(specs))
    width = 0.8 / len(MODES)
    top = 1.2
    for i, (mode, title) in enumerate(MODES.items()):
        ratios = [
            best[c, m, mode, "jaxrnn"] / peer_best(best, c, m, mode, libs)[1] for c, m in specs
        ]
        bars = ax.bar(x + (i - (len(MODES) - 1) / 2) * width, ratios, width, label=title)
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
        top = max(top, 1.12 * max(ratios))
    ax.axhline(1.0, color="k", lw=1, label="1.0: as fast as the best peer")
    ax.axhline(0.8, color="k", lw=1, ls="--", label="0.8")
    ax.set_xticks(x, [f"{c}\n{m}" for c, m in specs])
    ax.set_ylim(0, top)
    ax.set_ylabel("jaxrnn time / best peer time")
    ax.set_title("jaxrnn vs the fastest of torch, flax, equinox (lower is better)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper right", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
