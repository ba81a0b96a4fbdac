"""What ``jaxrnn.host.reuse_freed_memory()`` changes: time and page faults per call.

For each case ``(B, T, I, H)`` of ``bench_peers.py`` and each model (``jaxrnn.nn.LSTM``
and ``GRU``, one layer; the 2-layer bidirectional LSTM at case a), the forward pass and
forward + backward (gradient of ``sum(output)`` w.r.t. params and input) are jitted
and timed, float32, in a fresh interpreter per setting: glibc's malloc defaults, and
``reuse_freed_memory()`` called first. The settings alternate over ``--rounds`` rounds
(default 2, so 4 interpreters); a cell of the table is the best of the rounds' medians.
The kernel's minor page faults per call (``getrusage``) and the compiled call's
temporary buffer (``memory_analysis().temp_size_in_bytes``) say why.

Usage::

    python benchmarks/bench_host.py              # ~10 min on 2 CPU cores
    python benchmarks/bench_host.py --quick      # case a only, one round

Writes ``benchmarks/results/host.{csv,md}`` and prints the command line.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys

from bench_peers import CASES, engine_string  # the shapes (B, T, I, H); the path taken

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
MODELS = ("lstm", "gru", "bilstm2")
SETTINGS = ("glibc defaults", "reuse_freed_memory()")


def measure(setting: str, cases: list[str], budget: float) -> list[dict]:
    """Run in a fresh interpreter: time every case and model under ``setting``."""
    import resource
    import statistics
    import time

    import jaxrnn

    if setting == SETTINGS[1]:
        assert jaxrnn.host.reuse_freed_memory(), "glibc did not accept the settings"
    import jax

    out = []
    for case in cases:
        B, T, I, H = CASES[case]
        for model in MODELS:
            if model == "bilstm2" and case != "a":
                continue
            cls = jaxrnn.nn.GRU if model == "gru" else jaxrnn.nn.LSTM
            kw = dict(num_layers=2, bidirectional=True) if model == "bilstm2" else {}
            net = cls(I, H, batch_first=True, **kw)
            params = net.init(jax.random.PRNGKey(0))
            x = jax.random.normal(jax.random.PRNGKey(1), (B, T, I))
            fns = {
                "fwd": jax.jit(lambda p, x, net=net: net.apply(p, x)[0]),
                "fwd+bwd": jax.jit(
                    jax.grad(lambda p, x, net=net: net.apply(p, x)[0].sum(), argnums=(0, 1))
                ),
            }
            for mode, fn in fns.items():
                temp = fn.lower(params, x).compile().memory_analysis().temp_size_in_bytes
                for _ in range(3):
                    jax.block_until_ready(fn(params, x))
                times = []
                f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                end = time.perf_counter() + budget
                while len(times) < 5 or time.perf_counter() < end:
                    t = time.perf_counter()
                    jax.block_until_ready(fn(params, x))
                    times.append(time.perf_counter() - t)
                faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / len(times)
                out.append(
                    dict(case=case, model=model, mode=mode, setting=setting,
                         ms=1e3 * statistics.median(times), faults=faults, temp=temp)
                )  # fmt: skip
    return out


def write(rows: list[dict], out: str, command: str) -> None:
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "host.csv"), "w", newline="") as fh:
        w = csv.DictWriter(fh, ["round", "case", "model", "mode", "setting", "ms", "faults",
                                "temp"])  # fmt: skip
        w.writeheader()
        w.writerows(rows)
    best: dict = {}
    for r in rows:
        k = (r["case"], r["model"], r["mode"], r["setting"])
        if k not in best or r["ms"] < best[k]["ms"]:
            best[k] = r
    lines = [
        "# Host memory: glibc's defaults against `jaxrnn.host.reuse_freed_memory()`",
        "",
        f"Command: `{command}`  ",
        "jaxrnn.nn layers, float32, jitted; each setting in its own interpreter, "
        "alternating; best of the rounds' medians. *faults*: minor page faults per call; "
        "*temp*: the compiled call's temporary buffer.  ",
        f"jaxrnn's LSTM/GRU: {engine_string()}.",
        "",
        "| case | B, T, I, H | model | mode | temp MiB | default ms | faults | "
        "reuse ms | faults | reuse / default |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for case, model, mode, setting in best:
        if setting != SETTINGS[0] or (case, model, mode, SETTINGS[1]) not in best:
            continue
        d, r = best[case, model, mode, SETTINGS[0]], best[case, model, mode, SETTINGS[1]]
        shape = ", ".join(map(str, CASES[case]))
        lines.append(
            f"| {case} | {shape} | {model} | {mode} | {d['temp'] / 2**20:.0f} | "
            f"{d['ms']:.3g} | {d['faults']:.0f} | {r['ms']:.3g} | {r['faults']:.0f} | "
            f"**{r['ms'] / d['ms']:.2f}** |"
        )
    with open(os.path.join(out, "host.md"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="case a, one round")
    ap.add_argument("--cases", default="a,b,c,d")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--budget", type=float, default=1.0, help="seconds per measurement")
    ap.add_argument("--out", default=RESULTS)
    ap.add_argument("--child", help=argparse.SUPPRESS)  # setting, in a fresh interpreter
    args = ap.parse_args(argv)
    cases = ["a"] if args.quick else args.cases.split(",")
    for c in cases:
        if c not in CASES:
            ap.error(f"unknown case {c!r}; known: {sorted(CASES)}")
    if args.child is not None:
        print(json.dumps(measure(args.child, cases, args.budget)))
        return
    command = " ".join(["python", "benchmarks/bench_host.py", *(sys.argv[1:] if argv is None
                                                                 else argv)])  # fmt: skip
    rows = []
    for r in range(1 if args.quick else args.rounds):
        for setting in SETTINGS:
            child = [sys.executable, os.path.abspath(__file__), "--child", setting,
                     "--cases", ",".join(cases), "--budget", str(args.budget)]  # fmt: skip
            res = subprocess.run(child, capture_output=True, text=True, check=True)
            got = json.loads(res.stdout.strip().splitlines()[-1])
            rows += [dict(row, round=r) for row in got]
            print(f"round {r} {setting}: done", flush=True)
    write(rows, args.out, command)


if __name__ == "__main__":
    main()
