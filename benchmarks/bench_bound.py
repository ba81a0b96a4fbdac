"""How much of the GEMM throughput a scanned recurrence can reach on this backend.

A gated cell's forward + backward costs ``3 x 2 B T (I + H) G H`` GEMM FLOPs (``G = 4``
LSTM, ``3`` GRU; the roofline of ``bench_peers.py``). Two of those products cannot
leave the time loop, since each step's input is the previous step's output:

- forward, ``h_{t-1} W_hh^T``: ``(B, H) @ (H, G H)``, ``2 B T H G H`` FLOPs;
- backward, ``dg_t W_hh``: ``(B, G H) @ (G H, H)``, as many.

Everything else (the input projection, the weight gradients, the input gradient) can
be one GEMM over all steps. This script measures, on the current JAX backend, float32:

- ``peak``: a jitted ``jnp.dot`` of two 1024 x 1024 matrices (the roofline's 100 %);
- ``fwd loop``, ``bwd loop``: a ``lax.scan`` over ``T`` steps of the bare recurrent
  product and the cheapest pointwise op that feeds it back (``h <- (h W^T)[:, :H]``,
  ``d <- tile(d W, G)``): what one step's product costs inside a loop, with nothing
  else in the step;
- ``jaxrnn``: ``jaxrnn.nn.LSTM`` / ``GRU`` (``batch_first=True``), gradient of
  ``sum(output)`` with respect to the parameters and the input, jitted: on the XLA path
  (``_onednn.disabled()``), and on the oneDNN path, the default on CPU
  (``jaxrnn/cells/_onednn.py``; not a scan, so the bound does not hold for it).

Every number is the fastest of its calls. The **bound** is the forward + backward time
of an implementation whose two loops run at the measured loop rates with no other work
in them and whose remaining GEMMs run at ``peak``, one after the other:
``t = 2BTHGH / r_fwd + 2BTHGH / r_bwd + (FLOPs - 4BTHGH) / peak``; ``bound %`` is
``FLOPs / t / peak``. It is optimistic (a real step also computes the gates, and the
other GEMMs do not all reach ``peak``) except in one way: work could run beside a loop
product on cores the product leaves idle. On a 2-core CPU the loop product at shapes b
and d already runs on both cores (its rate is above half the peak).

Where the XLA path's time goes: one more set of calls runs under ``jax.profiler`` and the
time its compiled ops were busy is summed in four groups (ms per call; ops running at
the same time on the two cores both count), for the XLA path: GEMMs inside the time
loops (ops that run more than once per call), other ops inside the loops (gates, copies,
the loops' bookkeeping), GEMMs over the whole sequence, and other whole-sequence ops (the
gate coefficients, transposes, reductions). A GEMM is an op of the compiled HLO that is
or calls a ``dot``.

Usage::

    python benchmarks/bench_bound.py                        # ~1 minute on 2 CPU cores
    python benchmarks/bench_bound.py --reuse-freed-memory   # as results/bound.md was made

Writes ``benchmarks/results/bound.md`` and prints it.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import platform
import re
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
from bench_peers import CASES, RESULTS, Spec, timed

import jaxrnn
from jaxrnn.cells import _onednn

TARGET = 0.8  # the roofline target of issue 12 (fwd+bwd at shapes b and d)


def fastest(fn, *args, repeats: int) -> float:
    """Seconds of the fastest of ``repeats`` calls of ``fn(*args)`` (after one warm-up)."""
    return min(timed(lambda: jax.block_until_ready(fn(*args)), repeats))


def loop_rates(B: int, T: int, H: int, G: int, repeats: int) -> tuple[float, float]:
    """FLOP/s of the bare recurrent products in a ``lax.scan`` of ``T`` steps."""
    key_w, key_h = jax.random.split(jax.random.PRNGKey(0))
    W = 0.01 * jax.random.normal(key_w, (G * H, H))
    h = jax.random.normal(key_h, (B, H))

    @jax.jit
    def forward(h, W):
        return jax.lax.scan(lambda h, _: ((h @ W.T)[:, :H], None), h, None, length=T)[0]

    @jax.jit
    def backward(d, W):
        return jax.lax.scan(lambda d, _: (jnp.tile(d @ W, (1, G)), None), d, None, length=T)[0]

    flops = 2 * B * T * H * G * H
    return (
        flops / fastest(forward, h, W, repeats=repeats),
        flops / fastest(backward, jnp.tile(h, (1, G)), W, repeats=repeats),
    )


def gemm_ops(hlo: str) -> set[str]:
    """Names of the compiled HLO's instructions that are, or call, a ``dot``."""
    with_dot, computation = set(), None
    for line in hlo.splitlines():
        header = re.match(r"\s*(?:ENTRY\s+)?%([\w.\-]+) \(.*\{\s*$", line)
        if header:
            computation = header.group(1)
        elif computation and re.search(r"\s(dot|convolution)\(", line):
            with_dot.add(computation)
    ops = set()
    for line in hlo.splitlines():
        inst = re.match(r"\s*(?:ROOT\s+)?%([\w.\-]+) = ", line)
        if not inst:
            continue
        called = re.search(r"calls=%([\w.\-]+)", line)
        if re.search(r"\s(dot|convolution)\(", line) or (called and called[1] in with_dot):
            ops.add(inst[1])
    return ops


def busy_ms(fn, args, calls: int = 3) -> dict[str, float]:
    """Busy time of ``fn``'s compiled ops per call in four groups (module docstring), and
    ``profiled``: the traced calls' own time per call."""
    hlo = fn.as_text()
    # Loops and calls are containers: their events span their bodies' ops.
    containers = set(re.findall(r"%([\w.\-]+) = .*?[\s)](?:while|conditional|call)\(", hlo))
    names = set(re.findall(r"%([\w.\-]+) = ", hlo)) - containers
    gemms = gemm_ops(hlo)
    jax.block_until_ready(fn(*args))
    busy, count = collections.Counter(), collections.Counter()
    with tempfile.TemporaryDirectory() as trace_dir:
        with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
            start = time.perf_counter()
            for _ in range(calls):
                jax.block_until_ready(fn(*args))
            profiled = (time.perf_counter() - start) * 1e3 / calls
        (path,) = glob.glob(os.path.join(trace_dir, "**", "perfetto_trace.json.gz"), recursive=True)
        with gzip.open(path) as fh:
            events = json.load(fh)
    for e in events["traceEvents"] if isinstance(events, dict) else events:
        if e.get("ph") == "X" and e["name"] in names:
            busy[e["name"]] += e.get("dur", 0) / 1e3 / calls
            count[e["name"]] += 1
    groups = collections.Counter({"profiled": profiled})
    for name, ms in busy.items():
        where = "loop" if count[name] > calls else "sequence"
        groups[f"{where} {'GEMM' if name in gemms else 'other'}"] += ms
    return groups


GROUPS = ("loop GEMM", "loop other", "sequence GEMM", "sequence other")


def jaxrnn_grads(spec: Spec):
    """``spec``'s jaxrnn layer's forward + backward compiled on the XLA path and on
    oneDNN (where built; else the XLA path again), and its arguments."""
    B, T, I, _ = spec.shape
    net = spec.jaxrnn_layer()
    args = (net.init(jax.random.PRNGKey(0)), jax.random.normal(jax.random.PRNGKey(1), (B, T, I)))
    grad = jax.grad(lambda p, x: jnp.sum(net.apply(p, x)[0]), argnums=(0, 1))
    with _onednn.disabled():
        xla = jax.jit(grad).lower(*args).compile()
    with _onednn.enabled():
        onednn = jax.jit(grad).lower(*args).compile()
    return xla, onednn, args


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="a,b,c,d", help=f"comma-separated of {sorted(CASES)}")
    ap.add_argument("--repeats", type=int, default=20, help="calls per measurement")
    ap.add_argument("--reuse-freed-memory", action="store_true")
    ap.add_argument("--out", default=RESULTS)
    args = ap.parse_args(argv)
    cases = args.cases.split(",")
    for c in cases:
        if c not in CASES:
            ap.error(f"unknown case {c!r}; known: {sorted(CASES)}")
    malloc = "glibc defaults"
    if args.reuse_freed_memory and jaxrnn.host.reuse_freed_memory():  # before JAX starts
        malloc = "jaxrnn.host.reuse_freed_memory()"
    command = " ".join(
        ["python", "benchmarks/bench_bound.py", *(sys.argv[1:] if argv is None else argv)]
    )

    n = 1024
    a = jax.random.normal(jax.random.PRNGKey(2), (n, n))
    peak = 2 * n**3 / fastest(jax.jit(jnp.dot), a, a, repeats=3 * args.repeats)
    lines = [
        "# How far a scanned recurrence can go (forward + backward)",
        "",
        f"Command: `{command}`  ",
        f"jax {jax.__version__} on {jax.default_backend()}, {platform.machine()}, "
        f"{os.cpu_count()} cores, float32, malloc: {malloc}. Peak (1024^3 `jnp.dot`): "
        f"{peak / 1e9:.0f} GFLOP/s. Every time is the fastest of {args.repeats} calls. "
        "*loop* rates: the bare recurrent product in a `lax.scan` (forward `(B, H) @ "
        "(H, GH)`, backward `(B, GH) @ (GH, H)`); *bound*: both loops at those rates with "
        "nothing else in them, every other GEMM at the peak (benchmarks/README.md, "
        f'"How far a scanned recurrence can go"). Target: {TARGET:.0%} of the peak. '
        "*XLA*: jaxrnn on the XLA path (`JAXRNN_ONEDNN=0`); *oneDNN*: on the oneDNN path, the "
        f"default ({'built' if _onednn.available() else 'not built: the XLA path again'}; "
        "not a scan, so the bound does not hold for it).",
        "",
        "| case | B, T, I, H | cell | GFLOP / call | fwd loop % | bwd loop % | bound ms | "
        "bound % | at target ms | XLA ms | XLA % | oneDNN ms | oneDNN % |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    where = [
        "",
        "## Where the XLA path's time goes",
        "",
        "Busy time of the compiled ops, ms per call (`jax.profiler`, 3 calls; ops that run at "
        "the same time on different cores both count, so a row can add up to more than the "
        "call; *profiled*: the traced calls' own time, longer where the tracer's cost per op "
        "shows, at the small shapes). *loop*: ops that run once per step; *sequence*: once "
        "per call.",
        "",
        "| case | cell | XLA ms | profiled ms | " + " | ".join(GROUPS) + " |",
        "|---|---|---|---|" + "---|" * len(GROUPS),
    ]
    for case in cases:
        B, T, I, H = CASES[case]
        for cell in ("lstm", "gru"):
            spec = Spec(case, cell)
            G = spec.gates
            flops = spec.gflop("grad") * 1e9
            r_fwd, r_bwd = loop_rates(B, T, H, G, args.repeats)
            serial = 2 * B * T * H * G * H
            bound = serial / r_fwd + serial / r_bwd + (flops - 2 * serial) / peak
            grad, onednn, grad_args = jaxrnn_grads(spec)
            ours = fastest(grad, *grad_args, repeats=args.repeats)
            on_onednn = fastest(onednn, *grad_args, repeats=args.repeats)
            groups = busy_ms(grad, grad_args)
            where.append(
                f"| {case} | {cell} | {1e3 * ours:.3g} | {groups['profiled']:.3g} | "
                + " | ".join(f"{groups[g]:.3g}" for g in GROUPS)
                + " |"
            )
            lines.append(
                f"| {case} | {B}, {T}, {I}, {H} | {cell} | {flops / 1e9:.3g} | "
                f"{100 * r_fwd / peak:.0f} | {100 * r_bwd / peak:.0f} | {1e3 * bound:.3g} | "
                f"**{100 * flops / bound / peak:.0f}** | {1e3 * flops / (TARGET * peak):.3g} | "
                f"{1e3 * ours:.3g} | {100 * flops / ours / peak:.0f} | "
                f"{1e3 * on_onednn:.3g} | {100 * flops / on_onednn / peak:.0f} |"
            )
            print(lines[-1], flush=True)
    lines += where
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "bound.md"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines[:5] + where))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
