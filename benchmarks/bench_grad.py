"""Time per step and peak memory of BPTT, checkpointed BPTT and exact RTRL.

Two sweeps on an Elman cell with a linear readout and squared loss, batch 1, float32:

1. hidden size ``n`` at fixed ``T`` (RTRL grows as ``n^4`` per step, BPTT as ``n^2``);
2. sequence length ``T`` from 1e3 to 1e5 at a tiny ``n`` (RTRL memory is flat in ``T``,
   BPTT's grows linearly, checkpointed BPTT's as ``sqrt(T)``).

The element-wise RTRL path (IndRNN cell, ``O(P)`` per step) is included for reference.
Peak memory is XLA's compiled memory analysis of the jitted gradient function
(``temp + arguments + outputs``), not process RSS. Time is the median wall time of
``--repeats`` calls after a warm-up, divided by ``T``.

Usage::

    python benchmarks/bench_grad.py                 # default sweep, a few minutes on CPU
    python benchmarks/bench_grad.py --quick         # smoke run

Writes ``benchmarks/results/grad_bench.{csv,md,png}`` and prints the command line.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import jaxrnn
from jaxrnn.grad import make_grad_fn
from jaxrnn.train import memory_bytes

RESULTS = os.path.join(os.path.dirname(__file__), "results")


def mse_loss(head, y, target):
    return 0.5 * jnp.sum((head @ y - target) ** 2)


# benchmark name -> (registry method, its options, element-wise cell)
METHODS = {
    "bptt": ("bptt", {}, False),
    "bptt_ckpt": ("bptt", {"checkpoint": True}, False),
    "rtrl": ("rtrl", {}, False),
    "rtrl_diag": ("rtrl", {}, True),  # RTRL picks its element-wise path for IndRNN
}


def make_fn(method: str, n: int):
    name, options, element_wise = METHODS[method]
    cell = jaxrnn.cells.indrnn(1, n) if element_wise else jaxrnn.rnn(1, n)
    return cell, make_grad_fn(name, cell, mse_loss, **options)


def measure(method: str, n: int, T: int, repeats: int) -> dict:
    cell, fn = make_fn(method, n)
    key = jax.random.key(0)
    params = (cell.init(key), jax.random.normal(key, (1, n), jnp.float32) / n**0.5)
    xs = jax.random.normal(jax.random.key(1), (T, 1), jnp.float32)
    targets = jax.random.normal(jax.random.key(2), (T, 1), jnp.float32)
    f = jax.jit(lambda p, x, t: fn(p, x, t))
    compiled = f.lower(params, xs, targets).compile()
    mem = memory_bytes(compiled) or {"peak": -1, "temp": -1}
    jax.block_until_ready(compiled(params, xs, targets))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(params, xs, targets))
        times.append(time.perf_counter() - t0)
    p = sum(a.size for a in jax.tree_util.tree_leaves(params[0]))
    return {
        "method": method,
        "n": n,
        "params": p,
        "T": T,
        "us_per_step": 1e6 * float(np.median(times)) / T,
        "peak_bytes": mem["peak"],
        "temp_bytes": mem["temp"],
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sweep (smoke test)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=RESULTS)
    ap.add_argument(
        "--replot", action="store_true", help="rewrite the .md/.png from the existing .csv"
    )
    args = ap.parse_args(argv)
    if args.replot:
        with open(os.path.join(args.out, "grad_bench.csv")) as fh:
            rows = list(csv.DictReader(fh))
        write(rows, args.out, "python benchmarks/bench_grad.py", echo=False)
        return
    if args.quick:
        sizes, T_fixed, lengths, n_small = [8, 16], 200, [1000, 3000], 4
    else:
        sizes, T_fixed, lengths, n_small = [8, 16, 32, 64], 1000, [1000, 10_000, 100_000], 8
    methods = list(METHODS)
    rows = []
    for n in sizes:
        for m in methods:
            rows.append({"sweep": "hidden", **measure(m, n, T_fixed, args.repeats)})
            print(rows[-1], flush=True)
    for T in lengths:
        for m in methods:
            rows.append({"sweep": "length", **measure(m, n_small, T, args.repeats)})
            print(rows[-1], flush=True)
    os.makedirs(args.out, exist_ok=True)
    write(rows, args.out, " ".join(["python", "benchmarks/bench_grad.py", *(argv or sys.argv[1:])]))


def write(rows, out, command, echo=True):
    keys = ["sweep", "method", "n", "params", "T", "us_per_step", "peak_bytes", "temp_bytes"]
    if echo:
        with open(os.path.join(out, "grad_bench.csv"), "w", newline="") as fh:
            w = csv.DictWriter(fh, keys)
            w.writeheader()
            w.writerows(rows)
    device = f"{jax.devices()[0].platform} ({platform.processor() or platform.machine()}, "
    device += f"{os.cpu_count()} cores), jax {jax.__version__}, float32, batch 1"
    lines = [
        "# Gradient methods: time per step and peak memory",
        "",
        f"Command: `{command}`  ",
        f"Device: {device}. Elman cell (IndRNN for `rtrl_diag`), input 1, linear readout.",
        "Memory from XLA's compiled memory analysis: *peak* = temp + arguments + outputs",
        "(the arguments include the input stream, ``8 T`` bytes here); *temp* = working",
        "memory beyond arguments and outputs.",
        "",
        "| sweep | method | n | params | T | us / step | peak (KiB) | temp (KiB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['sweep']} | {r['method']} | {r['n']} | {r['params']} | {r['T']} | "
            f"{float(r['us_per_step']):.2f} | {int(r['peak_bytes']) / 1024:.1f} | "
            f"{int(r['temp_bytes']) / 1024:.1f} |"
        )
    with open(os.path.join(out, "grad_bench.md"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    plot(rows, os.path.join(out, "grad_bench.png"))
    print(f"wrote {out}/grad_bench.md, .png" + ("" if echo else " (from the .csv)"))
    print(f"command: {command}")


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    methods = sorted({r["method"] for r in rows})
    for m in methods:
        h = [r for r in rows if r["sweep"] == "hidden" and r["method"] == m]
        ln = [r for r in rows if r["sweep"] == "length" and r["method"] == m]
        axes[0].plot([int(r["n"]) for r in h], [float(r["us_per_step"]) for r in h], "o-", label=m)
        axes[1].plot([int(r["n"]) for r in h], [int(r["peak_bytes"]) / 2**10 for r in h], "o-")
        axes[2].plot([int(r["T"]) for r in ln], [int(r["temp_bytes"]) / 2**10 for r in ln], "o-")
    T_fixed = next(r["T"] for r in rows if r["sweep"] == "hidden")
    n_small = next(r["n"] for r in rows if r["sweep"] == "length")
    axes[0].set(xlabel="hidden size n", ylabel="us per step", title=f"time, T={T_fixed}")
    axes[1].set(xlabel="hidden size n", ylabel="peak KiB", title=f"peak memory, T={T_fixed}")
    axes[2].set(xlabel="sequence length T", ylabel="temp KiB", title=f"working memory, n={n_small}")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
