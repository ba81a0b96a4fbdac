"""jaxrnn.host.reuse_freed_memory: page faults per call with and without it.

The reference is the kernel's own count of minor page faults (``getrusage``): under
glibc's defaults a call faults on every 4 KiB page of its temporary buffer once that
buffer is above the mmap threshold (32 MiB), and on almost none once freed memory is
kept. Each setting runs in a fresh interpreter, because the arena setting must precede
JAX's start.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

from jaxrnn.host import reuse_freed_memory

_SCRIPT = r"""
import json, resource, sys, warnings
import jaxrnn.host
mode = sys.argv[1]
applied = jaxrnn.host.reuse_freed_memory() if mode == "on" else None
import jax, jax.numpy as jnp

def f(x):  # the temporary buffer holds the scan's outputs and the products: 3 T MiB
    c, ys = jax.lax.scan(lambda c, a: (c * 0.5 + a, jnp.sin(c)), x[0], x)
    return jnp.sum(ys[::-1] * jnp.cos(ys)) + jnp.sum(c)

out = dict(applied=applied)
for T in (16, 40):  # 48 MiB: between the two limits; 120 MiB: above both
    x = jnp.ones((T, 2**18), jnp.float32)
    g = jax.jit(f)
    temp = g.lower(x).compile().memory_analysis().temp_size_in_bytes
    for _ in range(4):
        jax.block_until_ready(g(x))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        jax.block_until_ready(g(x))
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10
    out[T] = faults / (temp / 4096)  # faults per page of the temporary buffer, per call
    out["temp", T] = temp
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter("always")
    jaxrnn.host.reuse_freed_memory()
out["late"] = [str(m.message) for m in w]
print(json.dumps({str(k): v for k, v in out.items()}))
"""


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)
def test_reuse_freed_memory_removes_the_page_faults_of_large_temporary_buffers():
    procs = {
        mode: subprocess.Popen(
            [sys.executable, "-c", _SCRIPT, mode], stdout=subprocess.PIPE, text=True
        )
        for mode in ("off", "on")
    }
    res = {}
    for mode, p in procs.items():
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0
        res[mode] = json.loads(out.strip().splitlines()[-1])
    mid, big = "16", "40"
    assert 32 * 2**20 < res["off"]["('temp', 16)"] < 64 * 2**20 < res["off"]["('temp', 40)"]
    assert res["on"]["applied"] is True
    # glibc's defaults: every page of the temporary buffer faults again on each call.
    assert res["off"][mid] > 0.9 and res["off"][big] > 0.9
    # Kept mapped: the pages are reused. (The heap may still grow by a buffer once or
    # twice while calls overlap: the next call can allocate before the last one frees.)
    assert res["on"][mid] < 0.35 and res["on"][big] < 0.35
    # Called after JAX has started, it still applies but says it is partial.
    assert any("after JAX started" in m for m in res["on"]["late"])


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        (dict(limit="1"), TypeError, "limit must be an int"),
        (dict(limit=True), TypeError, "limit must be an int"),
        (dict(limit=0), ValueError, r"limit must be in \[1, 2\*\*31 - 1\]"),
        (dict(limit=2**31), ValueError, r"limit must be in"),
    ],
)
def test_reuse_freed_memory_checks_its_arguments(kwargs, err, match):
    with pytest.raises(err, match=match):
        reuse_freed_memory(**kwargs)
