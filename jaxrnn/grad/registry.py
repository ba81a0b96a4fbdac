"""The one registry of gradient methods: :data:`GRADIENT_METHODS`.

``jaxrnn.grad.online``, ``jaxrnn.train.gradient_methods`` and the command line
(``jaxrnn train --method``, ``jaxrnn compare --methods``) all read it, so a method added
here is available everywhere. Each entry gives

- ``grad_fn``: ``factory(cell, step_loss, **options) -> grad_fn`` with the common call
  ``grad_fn((cell_params, head_params), xs, targets, carry0=None, *, mask=None,
  key=None) -> (loss, (cell_grads, head_grads))``;
- ``options``: the keyword options the factory takes (e.g. ``("k",)`` for TBPTT);
- ``forward``: ``(cell, **options) -> ForwardMethod`` for the forward-mode methods
  (what :func:`jaxrnn.grad.online` runs one step at a time), else ``None``;
- ``online``: usable by :func:`jaxrnn.grad.online`;
- ``stochastic``: needs ``key``;
- ``element_wise``: only for element-wise cells and stacks of them (``layerwise``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from jaxrnn.base import Cell
from jaxrnn.grad._common import ForwardMethod, GradFn
from jaxrnn.grad.bptt import bptt, tbptt
from jaxrnn.grad.layerwise import layerwise_grad, layerwise_method
from jaxrnn.grad.rflo import rflo, rflo_method
from jaxrnn.grad.rtrl import rtrl, rtrl_method
from jaxrnn.grad.snap import snap1, snap1_method
from jaxrnn.grad.uoro import uoro, uoro_method

__all__ = ["GRADIENT_METHODS", "GradientMethod", "gradient_method", "make_grad_fn"]


class GradientMethod(NamedTuple):
    """One gradient method of the registry (see the module docstring)."""

    grad_fn: Callable[..., GradFn]
    options: tuple[str, ...] = ()
    forward: Callable[..., ForwardMethod] | None = None
    online: bool = False
    stochastic: bool = False
    element_wise: bool = False


def _snap1_method(cell: Cell) -> ForwardMethod:
    return snap1_method()


def _uoro_method(cell: Cell) -> ForwardMethod:
    return uoro_method()


def _rflo_method(cell: Cell, *, alpha: float = 1.0) -> ForwardMethod:
    return rflo_method(alpha)


GRADIENT_METHODS: dict[str, GradientMethod] = {
    "bptt": GradientMethod(bptt, ("checkpoint",)),
    "tbptt": GradientMethod(tbptt, ("k",), online=True),
    "rtrl": GradientMethod(rtrl, ("diagonal",), rtrl_method, online=True),
    "snap1": GradientMethod(snap1, (), _snap1_method, online=True),
    "uoro": GradientMethod(uoro, (), _uoro_method, online=True, stochastic=True),
    "rflo": GradientMethod(rflo, ("alpha",), _rflo_method, online=True),
    "layerwise": GradientMethod(
        layerwise_grad, (), layerwise_method, online=True, element_wise=True
    ),
}


def gradient_method(name: str) -> GradientMethod:
    """The registry entry ``name``; ``ValueError`` listing the known names otherwise."""
    if name not in GRADIENT_METHODS:
        raise ValueError(f"method must be one of {sorted(GRADIENT_METHODS)}, got {name!r}")
    return GRADIENT_METHODS[name]


def make_grad_fn(name: str, cell: Cell, step_loss, **options) -> GradFn:
    """``GRADIENT_METHODS[name].grad_fn(cell, step_loss, **options)``, passing only the
    options that method takes (a caller may pass its whole configuration, e.g. the
    command line's ``k`` to every method); ``ValueError`` for an unknown name."""
    entry = gradient_method(name)
    return entry.grad_fn(
        cell, step_loss, **{k: v for k, v in options.items() if k in entry.options}
    )
