"""Parallel paths (``cells/_parallel.py``, mLSTM's parallel form) against the sequential scan.

For each cell and length ``T`` (1e2 .. 1e5), float32, batch ``B`` by ``jax.vmap`` of
``jaxrnn.scan``, this times the forward pass and the gradient of ``sum(ys)`` with
respect to the parameters and the inputs, for

- ``parallel``: the default (the cell's ``sequence``: ``jax.lax.associative_scan``, or
  mLSTM's quadratic parallel form);
- ``sequential``: ``fused=False`` (``lax.scan`` over ``cell.step``).

Rounds are interleaved (both variants once per round); the table gives the median in
milliseconds, the ratio sequential / parallel (above 1: the parallel path wins) and the
crossover length (the shortest ``T`` from which the parallel path wins). Compile time is
left out. mLSTM's parallel form costs ``O(T^2)`` memory, so it runs only up to 1e3.

    python benchmarks/bench_parallel.py            # a few minutes on a 2-core CPU
    python benchmarks/bench_parallel.py --quick    # smoke run
    python benchmarks/bench_parallel.py --replot   # redraw .md/.png from the .csv
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

import jaxrnn

RESULTS = Path(__file__).parent / "results"
B, I, H = 2, 32, 64
CELLS = {
    "min_gru": (lambda: jaxrnn.min_gru(I, H), 10**5),
    "min_lstm": (lambda: jaxrnn.min_lstm(I, H), 10**5),
    "lru": (lambda: jaxrnn.lru(I, H), 10**5),
    "rg_lru": (lambda: jaxrnn.rg_lru(H, H), 10**5),
    "mlstm": (lambda: jaxrnn.mlstm(I, H, num_heads=4), 10**3),
}
LENGTHS = (100, 1000, 10_000, 100_000)


def _timed(fn, *args) -> float:
    t = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - t


def build(cell, fused: bool):
    def forward(p, x):
        return jax.vmap(lambda xs: jaxrnn.scan(cell, p, xs, fused=fused)[1])(x)

    def loss(p, x):
        return jnp.sum(forward(p, x))

    return jax.jit(forward), jax.jit(jax.grad(loss, argnums=(0, 1)))


def measure(names, lengths, rounds):
    rows = []
    for name in names:
        make, t_max = CELLS[name]
        cell = make()
        params = cell.init(jax.random.key(0))
        for T in lengths:
            if T > t_max:
                continue
            x = jax.random.normal(jax.random.key(1), (B, T, cell.input_size))
            fns = {v: build(cell, v == "parallel") for v in ("parallel", "sequential")}
            for fwd, grad in fns.values():  # compile
                _timed(fwd, params, x)
                _timed(grad, params, x)
            times = {v: ([], []) for v in fns}
            for _ in range(rounds if T < 100_000 else max(1, rounds // 2)):
                for v, (fwd, grad) in fns.items():
                    times[v][0].append(_timed(fwd, params, x))
                    times[v][1].append(_timed(grad, params, x))
            med = {v: [1e3 * statistics.median(t) for t in ts] for v, ts in times.items()}
            row = dict(cell=name, T=T)
            for v in fns:
                row[f"{v}_fwd_ms"] = round(med[v][0], 3)
                row[f"{v}_grad_ms"] = round(med[v][1], 3)
            row["fwd_speedup"] = round(med["sequential"][0] / med["parallel"][0], 3)
            row["grad_speedup"] = round(med["sequential"][1] / med["parallel"][1], 3)
            rows.append(row)
            print(row, flush=True)
    return rows


def crossover(rows, cell, key):
    """The shortest measured T from which the parallel path wins at every longer T."""
    rs = sorted((r for r in rows if r["cell"] == cell), key=lambda r: int(r["T"]))
    wins = [float(r[key]) > 1.0 for r in rs]
    for k in range(len(rs)):
        if all(wins[k:]):
            return int(rs[k]["T"])
    return None


def write(rows, rounds):
    RESULTS.mkdir(exist_ok=True)
    lines = [
        "# Parallel vs sequential (`python benchmarks/bench_parallel.py`)",
        "",
        f"jax {jax.__version__}, backend {jax.default_backend()}, float32, B={B}, I={I}, "
        f"H={H} (LRU: {H} complex units; RG-LRU: I=H; mLSTM: 4 heads), median of "
        f"{rounds} interleaved rounds ({max(1, rounds // 2)} at T=1e5) on a shared "
        "2-core CPU (other jobs were running: compare within a row). speedup = "
        "sequential / parallel (> 1: the parallel path wins).",
        "",
        "| cell | T | parallel fwd ms | sequential fwd ms | fwd speedup | "
        "parallel fwd+bwd ms | sequential fwd+bwd ms | fwd+bwd speedup |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['cell']} | {int(r['T']):.0e} | {float(r['parallel_fwd_ms']):.2f} | "
            f"{float(r['sequential_fwd_ms']):.2f} | {float(r['fwd_speedup']):.2f} | "
            f"{float(r['parallel_grad_ms']):.2f} | {float(r['sequential_grad_ms']):.2f} | "
            f"{float(r['grad_speedup']):.2f} |"
        )
    lines += [
        "",
        "Where the parallel path wins (speedup > 1), and the crossover (the shortest "
        "measured T from which it wins at every longer T):",
        "",
    ]

    def wins(cell, key):
        ts = [f"{int(r['T']):.0e}" for r in rows if r["cell"] == cell and float(r[key]) > 1]
        return ", ".join(ts) or "nowhere"

    for cell in dict.fromkeys(r["cell"] for r in rows):
        f, g = crossover(rows, cell, "fwd_speedup"), crossover(rows, cell, "grad_speedup")
        lines.append(
            f"- {cell}: forward wins at {wins(cell, 'fwd_speedup')} (crossover "
            f"{f or 'none'}); forward+backward wins at {wins(cell, 'grad_speedup')} "
            f"(crossover {g or 'none'})"
        )
    (RESULTS / "parallel.md").write_text("\n".join(lines) + "\n")
    plot(rows, RESULTS / "parallel.png")
    print(f"wrote {RESULTS / 'parallel.md'}, parallel.csv and parallel.png")


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = list(dict.fromkeys(r["cell"] for r in rows))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, title in zip(axes, ("fwd", "grad"), ("forward", "forward + backward")):
        for k, cell in enumerate(cells):
            rs = sorted((r for r in rows if r["cell"] == cell), key=lambda r: int(r["T"]))
            T = [int(r["T"]) for r in rs]
            color = f"C{k}"
            ax.loglog(
                T,
                [float(r[f"parallel_{key}_ms"]) for r in rs],
                "-o",
                c=color,
                label=f"{cell} parallel",
            )
            ax.loglog(
                T,
                [float(r[f"sequential_{key}_ms"]) for r in rs],
                "--x",
                c=color,
                label=f"{cell} sequential",
            )
        ax.set_xlabel("sequence length T")
        ax.set_ylabel("ms (median)")
        ax.set_title(f"{title}, B={B}, H={H}, float32, CPU")
        ax.grid(True, which="both", alpha=0.3)
    axes[1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="T = 100, 1000; one round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cells", default=",".join(CELLS))
    ap.add_argument("--replot", action="store_true", help="redraw from results/parallel.csv")
    args = ap.parse_args(argv)
    if args.replot:
        with open(RESULTS / "parallel.csv") as f:
            write(list(csv.DictReader(f)), args.rounds)
        return 0
    lengths = LENGTHS[:2] if args.quick else LENGTHS
    rounds = 1 if args.quick else args.rounds
    rows = measure(args.cells.split(","), lengths, rounds)
    if args.quick:
        return 0
    RESULTS.mkdir(exist_ok=True)
    with open(RESULTS / "parallel.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    write(rows, rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
