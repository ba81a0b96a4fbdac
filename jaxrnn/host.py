"""Host memory for XLA:CPU: keep freed buffers mapped, so that calls stop page-faulting.

A compiled JAX function on CPU allocates its temporary buffer afresh on every call
(size: ``jitted.lower(...).compile().memory_analysis().temp_size_in_bytes``; the
residuals of a recurrent layer's backward pass live there) and frees it when the call
ends. glibc's ``malloc`` (see ``mallopt(3)``) serves a request above its *mmap
threshold* (adjusted on the fly, at most 32 MiB) with a new ``mmap`` and hands it back
to the kernel with ``munmap`` when freed; a request above 64 MiB from any thread but the
main one always goes that way, because a thread's arena grows in heaps of at most
64 MiB, and XLA runs its calls on its own threads. Fresh pages are zeroed by the kernel
on first touch, one page fault per 4 KiB, so every call pays about a microsecond per
4 KiB of temporary buffer, time the computation itself does not need.

:func:`reuse_freed_memory` sets ``M_MMAP_THRESHOLD = M_TRIM_THRESHOLD = limit`` and
``M_ARENA_MAX = 1``: threads started afterwards allocate from the main heap, which has
no size limit, buffers up to ``limit`` come from it and stay mapped when freed, and the
next call finds them ready. (The thresholds alone do not do it: a thread's arena still
maps and unmaps its heaps.) The costs: the process keeps the memory of its largest call
mapped until it exits, as a caching allocator does, and all threads share one
allocator lock, which slows whatever makes many small allocations: compiling takes
about 20 % longer, and a small model's call up to about 10 % in some runs. So it pays
off for large batches, long sequences and deep or bidirectional stacks, whose temporary
buffers exceed 32 MiB: ``benchmarks/README.md`` ("Host memory") has the measurements.
Nothing changes the numbers a computation produces.

Call it once, at the start of a program, before the first JAX computation: the arena
setting only reaches threads created afterwards (a ``RuntimeWarning`` says so when JAX
has already started). On a C library other than glibc it does nothing and returns
``False``.
"""

from __future__ import annotations

import ctypes
import platform
import warnings

__all__ = ["reuse_freed_memory"]

# mallopt(3) parameter numbers, from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8

_INT_MAX = 2**31 - 1


def _jax_started() -> bool:
    """Whether JAX has created its backends (and with them XLA's threads)."""
    try:
        from jax._src import xla_bridge
    except ImportError:  # pragma: no cover - JAX without this module
        return False
    started = getattr(xla_bridge, "backends_are_initialized", None)
    return bool(started()) if callable(started) else False


def reuse_freed_memory(limit: int = 2**30, *, warn: bool = True) -> bool:
    """Keep freed host buffers up to ``limit`` bytes mapped for reuse (glibc only).

    Args:
      limit: the largest buffer, in bytes, served from the heap and kept when freed
        (1 GiB by default); larger ones still use ``mmap``. ``1 <= limit < 2**31``.
      warn: warn when JAX has already started (the setting is then partial).

    Returns:
      ``True`` when glibc accepted the settings; ``False`` on another C library.

    See the module docstring for what it changes, why, and what it costs.
    """
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TypeError(f"limit must be an int (bytes), got {type(limit).__name__}")
    if not 1 <= limit <= _INT_MAX:
        raise ValueError(f"limit must be in [1, 2**31 - 1] bytes, got {limit}")
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:  # pragma: no cover - glibc always has it
        return False
    if warn and _jax_started():
        warnings.warn(
            "reuse_freed_memory() was called after JAX started: XLA's threads keep their "
            "own arenas, so their buffers are still mapped afresh on every call; call it "
            "before the first JAX computation",
            RuntimeWarning,
            stacklevel=2,
        )
    settings = ((_M_ARENA_MAX, 1), (_M_MMAP_THRESHOLD, limit), (_M_TRIM_THRESHOLD, limit))
    return all(mallopt(ctypes.c_int(k), ctypes.c_int(v)) == 1 for k, v in settings)
