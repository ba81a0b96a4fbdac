"""The engine's own choices, measured: fused path vs scanning ``step``, ``unroll``, hoisting.

For each case (B, T, I, H) and cell (LSTM, GRU), float32, ``jax.vmap`` over the batch of
``jaxrnn.scan``, this times the forward pass and the gradient of ``sum(ys)`` with respect
to the parameters and the input, for:

- ``fused``: the default (the cell's ``sequence``: fused forward, cuDNN-style backward);
- ``step``: ``fused=False`` (``lax.scan`` over ``cell.step``, JAX's own reverse mode);
- ``step+hoist``: ``fused=False, hoist=True`` (input projection over all steps first);
- ``fused, unroll=k`` for k in 2, 4, 8;
- ``fused, one product`` / ``fused, two products``: the LSTM's forward loop with
  ``[x_t, h_{t-1}] @ [W_ih, W_hh]^T`` or with ``x_t W_ih^T`` and ``h_{t-1} W_hh^T``
  apart, whatever ``jaxrnn.cells._fused.CONCAT_MAX`` would choose (the GRU always
  computes them apart).

Rounds are interleaved (every variant once per round), the table gives the median over
rounds in milliseconds and each variant's ratio to ``fused``; compile time (first call
minus a steady call) is reported apart.

    python benchmarks/bench_engine.py            # about 3 minutes on a 2-core CPU
    python benchmarks/bench_engine.py --quick    # smoke run
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
from bench_peers import CASES  # the shapes (B, T, I, H), one table for the benchmarks

import jaxrnn
from jaxrnn.cells import _fused

RESULTS = Path(__file__).parent / "results"
VARIANTS = {
    "fused": dict(),
    "step": dict(fused=False),
    "step+hoist": dict(fused=False, hoist=True),
    "fused, unroll=2": dict(unroll=2),
    "fused, unroll=4": dict(unroll=4),
    "fused, unroll=8": dict(unroll=8),
    "fused, one product": dict(products=1 << 62),
    "fused, two products": dict(products=0),
}


def _timed(fn, *args) -> float:
    t = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - t


def build(cell, options):
    def forward(p, x):
        return jax.vmap(lambda xs: jaxrnn.scan(cell, p, xs, **options)[1])(x)

    def loss(p, x):
        return jnp.sum(forward(p, x))

    return jax.jit(forward), jax.jit(jax.grad(loss, argnums=(0, 1)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one small case, 2 rounds")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--cases", default="a,c,b")
    args = ap.parse_args(argv)
    cases = ["a"] if args.quick else args.cases.split(",")
    rounds = 2 if args.quick else args.rounds
    rows = []
    for case in cases:
        B, T, I, H = CASES[case]
        for kind in ("lstm", "gru"):
            cell = getattr(jaxrnn, kind)(I, H)
            params = cell.init(jax.random.key(0))
            x = jax.random.normal(jax.random.key(1), (B, T, I))
            fns, compile_s = {}, {}
            for name, options in VARIANTS.items():
                if kind == "gru" and "products" in options:
                    continue  # the GRU always computes its two products apart
                options = dict(options)
                concat_max = options.pop("products", _fused.CONCAT_MAX)
                # a new cell: a fresh trace (the engine caches compiled runs per cell)
                c = cell if concat_max == _fused.CONCAT_MAX else getattr(jaxrnn, kind)(I, H)
                default, _fused.CONCAT_MAX = _fused.CONCAT_MAX, concat_max
                try:  # traced (and compiled) by the first calls
                    fwd, grad = build(c, options)
                    first = _timed(grad, params, x)
                    compile_s[name] = first - _timed(grad, params, x)
                    _timed(fwd, params, x)
                finally:
                    _fused.CONCAT_MAX = default
                fns[name] = (fwd, grad)
            times = {name: ([], []) for name in fns}
            for _ in range(rounds):
                for name, (fwd, grad) in fns.items():
                    times[name][0].append(_timed(fwd, params, x))
                    times[name][1].append(_timed(grad, params, x))
            med = {n: [1e3 * statistics.median(t) for t in ts] for n, ts in times.items()}
            for name in fns:
                rows.append(
                    dict(
                        case=case,
                        shape=f"{B}x{T}x{I}x{H}",
                        cell=kind,
                        variant=name,
                        fwd_ms=round(med[name][0], 3),
                        grad_ms=round(med[name][1], 3),
                        fwd_ratio=round(med[name][0] / med["fused"][0], 3),
                        grad_ratio=round(med[name][1] / med["fused"][1], 3),
                        compile_s=round(compile_s[name], 3),
                    )
                )
                print(rows[-1], flush=True)
    if args.quick:
        return 0
    RESULTS.mkdir(exist_ok=True)
    with open(RESULTS / "engine.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    lines = [
        "# Engine variants (`python benchmarks/bench_engine.py`)",
        "",
        f"jax {jax.__version__}, backend {jax.default_backend()}, float32, "
        f"median of {rounds} interleaved rounds; ratios are to `fused` in the same run.",
        "",
        "| case (B, T, I, H) | cell | variant | fwd ms | fwd+bwd ms | fwd ratio | "
        "fwd+bwd ratio | compile s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} ({r['shape']}) | {r['cell']} | {r['variant']} | {r['fwd_ms']:.2f} "
            f"| {r['grad_ms']:.2f} | {r['fwd_ratio']:.2f} | {r['grad_ratio']:.2f} "
            f"| {r['compile_s']:.2f} |"
        )
    (RESULTS / "engine.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS / 'engine.md'} and engine.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
