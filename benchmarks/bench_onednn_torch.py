"""jaxrnn's oneDNN path and PyTorch in one process: does either slow the other down?

(The path, now jaxrnn's default on CPU, was opt-in for a session because PyTorch's LSTM
took 2-5x longer after it had run; ``benchmarks/README.md`` tells why, and this script
shows it does not any more.)

Case a of ``bench_peers.py`` (B, T, I, H = 32, 100, 64, 128), an LSTM, float32, forward
+ backward (gradient of ``sum(output)``): PyTorch's ``nn.LSTM`` with 2 threads and
``jaxrnn.nn.LSTM`` jitted, each timed (median of 15 calls) alone, then again after the
other has run, in one interpreter per jaxrnn setting (the XLA path with ``JAXRNN_ONEDNN=0``,
and the oneDNN path with ``JAXRNN_ONEDNN=1``) and import order (PyTorch first or jaxrnn
first).

Usage::

    python benchmarks/bench_onednn_torch.py     # ~1 minute; writes results/onednn_torch.md
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from bench_peers import CASES, RESULTS

B, T, I, H = CASES["a"]
SETTINGS = {"XLA path": "0", "oneDNN path": "1"}


def measure(torch_first: bool) -> dict:
    """In this (fresh) interpreter: the four times, in ms."""
    import statistics
    import time

    if torch_first:
        import torch
    import jax
    import jax.numpy as jnp

    import jaxrnn

    if not torch_first:
        import torch

    torch.set_num_threads(2)
    lstm = torch.nn.LSTM(I, H)
    xt = torch.randn(T, B, I)
    net = jaxrnn.nn.LSTM(I, H)
    params = net.init(jax.random.key(0))
    x = jnp.ones((T, B, I), jnp.float32)
    grad = jax.jit(jax.grad(lambda p: jnp.sum(net.apply(p, x)[0])))

    def median_ms(fn):
        fn()
        samples = []
        for _ in range(15):
            t0 = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t0)
        return 1e3 * statistics.median(samples)

    def torch_call():
        lstm(xt)[0].sum().backward()

    def jaxrnn_call():
        jax.block_until_ready(grad(params))

    out = {}
    if torch_first:
        out["torch alone"] = median_ms(torch_call)
        out["jaxrnn after torch"] = median_ms(jaxrnn_call)
        out["torch after jaxrnn"] = median_ms(torch_call)
    else:
        out["jaxrnn alone"] = median_ms(jaxrnn_call)
        out["torch after jaxrnn"] = median_ms(torch_call)
        out["jaxrnn after torch"] = median_ms(jaxrnn_call)
    return out


def main() -> None:
    rows = []
    for setting, flag in SETTINGS.items():
        for torch_first in (True, False):
            env = {**os.environ, "JAXRNN_ONEDNN": flag}
            code = (
                f"import sys, json; sys.path.insert(0, {os.path.dirname(__file__)!r}); "
                f"import bench_onednn_torch as b; print(json.dumps(b.measure({torch_first})))"
            )
            run = subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
            )
            rows.append((setting, torch_first, json.loads(run.stdout.strip().splitlines()[-1])))
            print(rows[-1], flush=True)
    cols = ["torch alone", "jaxrnn alone", "torch after jaxrnn", "jaxrnn after torch"]
    lines = [
        "# jaxrnn's oneDNN path and PyTorch in one process",
        "",
        "Command: `python benchmarks/bench_onednn_torch.py`  ",
        f"LSTM, case a (B, T, I, H = {B}, {T}, {I}, {H}), float32, forward + backward, ms "
        "(median of 15 calls); PyTorch with 2 threads; one interpreter per row.",
        "",
        "| jaxrnn | imported first | " + " | ".join(cols) + " |",
        "|---|---|" + "---|" * len(cols),
    ]
    for setting, torch_first, t in rows:
        cells = " | ".join(f"{t[c]:.3g}" if c in t else "" for c in cols)
        lines.append(f"| {setting} | {'PyTorch' if torch_first else 'jaxrnn'} | {cells} |")
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "onednn_torch.md"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
