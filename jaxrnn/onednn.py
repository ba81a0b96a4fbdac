"""The oneDNN path of the LSTM and GRU on CPU: whether it is built, turning it off and on,
and the plans it keeps.

On the CPU backend, float32 ``lstm`` and ``gru`` layers without lengths, masks, resets or
a projection run forward and backward in one call of jaxrnn's C++ on oneDNN, the library
behind PyTorch's CPU LSTM (``jaxrnn/cells/_onednn.py`` has the conditions, the layouts
and how it differentiates; the README's engine section and ``benchmarks/README.md`` the
measurements). Everything else takes the XLA path, which this path equals to float32
rounding. These are its switches:

- :func:`available`: whether the install built it (Linux x86-64, a C++ compiler);
- :func:`disabled` / :func:`enabled`: trace with the XLA path, or with this one, inside
  a ``with`` block (``JAXRNN_ONEDNN=0`` in the environment when jaxrnn is imported turns
  it off for the process); :func:`active`: whether calls traced now take it;
- :func:`plan_cache`: the primitives, buffers and workspaces kept per shape between
  calls, and the byte limit on them (4 GiB unless set).

Example::

    with jaxrnn.onednn.disabled():
        grads = jax.jit(jax.grad(loss))(params, x)  # the XLA path
"""

from __future__ import annotations

from jaxrnn.cells._onednn import active, available, disabled, enabled, plan_cache

__all__ = ["active", "available", "disabled", "enabled", "plan_cache"]
