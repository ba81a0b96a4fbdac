"""The seeds' applications over several seeds, run one after the other, with the mean
and spread of each metric (the README's table comes from these commands).

    python examples/applications.py number_words --seeds 0,1,2
    python examples/applications.py number_words --seeds 0,1,2 --no-attention --steps 3000
    python examples/applications.py digit_strips --seeds 0,1,2
    python examples/applications.py digit_captions --seeds 0,1,2
    python examples/applications.py continual_reber --seeds 0,1,2,3,4,5,6,7,8,9

``continual_reber`` trains the LSTM without a forget gate (Hochreiter & Schmidhuber
1997) with and without an external reset at string starts, and the LSTM with a forget
gate, on the same streams, and prints Gers et al. (2000)'s table beside ours. Each
run is also ``jaxrnn train --task NAME --seed S``.
"""

import argparse
import time

import numpy as np

from jaxrnn.applications import APPLICATIONS

# Gers, Schmidhuber & Cummins 2000, Table 2 (continual embedded Reber grammar): share
# of 100 runs solving the continual stream (a test stream without a prediction error).
GERS_2000 = {
    "LSTM without forget gate (1997), external reset at string starts": "74 %",
    "LSTM without forget gate (1997), no reset": "0 %",
    "LSTM without forget gate, state decay 0.9": "0 %",
    "LSTM with forget gates": "18 %",
    "LSTM with forget gates and sequential alpha decay": "62 %",
}

parser = argparse.ArgumentParser()
parser.add_argument("task", choices=sorted(APPLICATIONS))
parser.add_argument("--seeds", default="0,1,2")
parser.add_argument("--steps", type=int, default=None)
parser.add_argument("--no-attention", action="store_true", help="number_words only")
parser.add_argument(
    "--configs",
    default="reset,no_forget,forget",
    help="continual_reber only: which of reset, no_forget, forget to run",
)
args = parser.parse_args()
seeds = [int(s) for s in args.seeds.split(",")]


def sweep(run, **kw):
    rows = []
    for seed in seeds:
        t0 = time.perf_counter()
        r = run(seed=seed, progress=False, **kw)
        print(
            "\n".join(r["report"]) + f"  [seed {seed}, {time.perf_counter() - t0:.0f} s]",
            flush=True,
        )
        rows.append({**r["metrics"], "wall_s": r["wall_s"]})
    return rows


def summary(rows):
    for k in rows[0]:
        v = np.array([r[k] for r in rows])
        print(
            f"  {k:<32} mean {v.mean():.4f}  std {v.std(ddof=1) if len(v) > 1 else 0:.4f}"
            f"  min {v.min():.4f}  max {v.max():.4f}"
        )


kw = {} if args.steps is None else {"steps": args.steps}
if args.task == "number_words":
    kw["attention"] = not args.no_attention
if args.task != "continual_reber":
    rows = sweep(APPLICATIONS[args.task], **kw)
    print(f"{args.task}, seeds {seeds}:")
    summary(rows)
else:
    results = {}
    for key, name, opts in (
        (
            "reset",
            "LSTM without forget gate (1997), external reset at string starts",
            dict(cell="lstm_no_forget", external_reset=True),
        ),
        ("no_forget", "LSTM without forget gate (1997), no reset", dict(cell="lstm_no_forget")),
        ("forget", "LSTM with forget gate, no reset", dict(cell="lstm")),
    ):
        if key in args.configs.split(","):
            results[name] = sweep(APPLICATIONS["continual_reber"], **opts, **kw)
    print("Continual embedded Reber grammar: runs that solve the test stream")
    print("Gers et al. 2000, Table 2:")
    for k, v in GERS_2000.items():
        print(f"  {k:<66} {v}")
    print(f"jaxrnn (10^6-symbol test stream, seeds {seeds}):")
    for cell, rows in results.items():
        solved = sum(r["solved"] for r in rows)
        first = np.median([r["symbols_before_first_error"] for r in rows])
        print(
            f"  {cell:<66} {solved:.0f}/{len(rows)} solved, median symbols before the "
            f"first error {first:.0f}"
        )
    for cell, rows in results.items():
        print(cell)
        summary(rows)
