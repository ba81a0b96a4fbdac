"""How XLA's CPU backend compiles the pointwise part of a recurrent step.

A loop body (``jax.lax.scan``) that applies ``k`` transcendental functions (sigmoid or
tanh) to slices of a ``(B, 4H)`` vector, as an LSTM step does with its gates, timed for
``k = 1 .. 4`` next to the same work on the whole ``(T B, 4H)`` array outside a loop.
On the CPU this project is measured on, one transcendental per fusion is vectorised and
two or more in one loop-body fusion run about ten times slower per element (scalar
code); the fused path of the built-in cells avoids such fusions (the gates are stored
for the backward pass, so each activation is its own fusion), and a hand-written hoisted
loop that fuses all four LSTM activations pays for it (``benchmarks/README.md``).

    python benchmarks/bench_xla_cpu.py        # ~1 minute; writes results/xla_cpu.md
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def best_median(fn, *args, reps=20, rounds=3):
    f = jax.jit(fn)
    jax.block_until_ready(f(*args))
    best = np.inf
    for _ in range(rounds):
        ts = []
        for _ in range(reps):
            t = time.perf_counter()
            jax.block_until_ready(f(*args))
            ts.append(time.perf_counter() - t)
        best = min(best, float(np.median(ts)))
    return best * 1e3


def in_loop(k, act, H):
    def run(xp):
        def body(h, u):
            s = h
            for j in range(k):
                s = s + act(u[:, j * H : (j + 1) * H])
            return s, None

        return jax.lax.scan(body, jnp.zeros(xp.shape[1:2] + (H,), xp.dtype), xp)[0]

    return run


def whole(k, act, H):
    def run(xp):
        u = xp.reshape(-1, xp.shape[-1])
        return sum(act(u[:, j * H : (j + 1) * H]) for j in range(k))

    return run


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", type=int, default=100)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--out", default=RESULTS)
    args = ap.parse_args(argv)
    T, B, H = args.T, args.batch, args.hidden
    xp = jax.random.normal(jax.random.key(0), (T, B, 4 * H), jnp.float32)
    rows = []
    for name, act in (("sigmoid", jax.nn.sigmoid), ("tanh", jnp.tanh)):
        for k in (1, 2, 3, 4):
            loop_ms = best_median(in_loop(k, act, H), xp)
            whole_ms = best_median(whole(k, act, H), xp)
            ns = 1e6 / (k * T * B * H)
            rows.append((name, k, loop_ms, loop_ms * ns, whole_ms, whole_ms * ns))
            print(f"{name} k={k}: loop {loop_ms:.3f} ms, whole array {whole_ms:.3f} ms", flush=True)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "xla_cpu.md")
    with open(path, "w") as fh:
        fh.write("# Transcendentals per loop-body fusion on XLA:CPU\n\n")
        fh.write("Command: `python benchmarks/bench_xla_cpu.py`  \n")
        fh.write(
            f"jax {jax.__version__}, {jax.default_backend()}, {platform.machine()}, "
            f"{os.cpu_count()} cores; T={T}, B={B}, H={H}, float32; best of 3 rounds of "
            "medians (the machine may be shared: compare rows within this run).\n\n"
        )
        fh.write("| activation | k per step | in a scan (ms) | ns / element | whole array (ms) ")
        fh.write("| ns / element |\n|---|---|---|---|---|---|\n")
        for name, k, a, an, b, bn in rows:
            fh.write(f"| {name} | {k} | {a:.3f} | {an:.2f} | {b:.3f} | {bn:.2f} |\n")
    print("wrote", path)


if __name__ == "__main__":
    main()
