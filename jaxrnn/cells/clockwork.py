"""Clockwork RNN (Koutnik, Greff, Gomez & Schmidhuber 2014)."""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn.base import Cell, configured
from jaxrnn.cells._common import check_float_dtype, check_positive_int, nonlinearity_fn
from jaxrnn.initializers import Initializer, pytorch_default


class ClockworkParams(NamedTuple):
    """Clockwork RNN parameters: ``w_ih (H, I)``, ``w_hh (H, H)``, ``b (H,)``.

    ``w_hh`` is block upper-triangular: its block ``(i, j)`` (rows of module ``i``,
    columns of module ``j``) is used only for ``j >= i`` (module ``j`` is at least as
    slow as module ``i``); the other blocks are zero at initialisation and masked in the
    step, so their gradient is zero. ``b`` is ``None`` with ``bias=False``.
    """

    w_ih: jax.Array
    w_hh: jax.Array
    b: jax.Array | None


class ClockworkCarry(NamedTuple):
    """Clockwork RNN state: ``h (H,)`` and the step counter ``t ()``.

    ``t`` counts the steps taken, modulo the least common multiple of the periods (so
    it stays exact in float32); it has the parameters' dtype so the carry ravels into
    one vector (RTRL) and its derivative is zero.
    """

    h: jax.Array
    t: jax.Array


@configured("clockwork_rnn")
def clockwork_rnn(
    input_size: int,
    hidden_size: int,
    *,
    num_modules: int = 4,
    periods: tuple[int, ...] | None = None,
    nonlinearity: str = "tanh",
    bias: bool = True,
    dtype=jnp.float32,
    input_init: Initializer | None = None,
    recurrent_init: Initializer | None = None,
    bias_init: Initializer | None = None,
) -> Cell:
    r"""Clockwork RNN (Koutnik et al., ICML 2014; seed 002's CW-RNN).

    The ``H`` hidden units form ``g = num_modules`` modules of ``m = H / g`` units with
    periods ``T_1 < T_2 < ... < T_g`` (default ``1, 2, 4, ..., 2^{g-1}``). At step
    ``t`` (counted from 0 in the carry, so the first step updates every module) module
    ``k`` is updated only if ``t mod T_k = 0``; otherwise it keeps its state. Slower
    modules feed faster ones, never the reverse (block upper-triangular ``W_hh``). For
    one example with ``x (I,)`` and carry ``(h (H,), t)``:

    .. math::

        a_t &= W_{ih} x_t + (W_{hh} \odot M) h_{t-1} + b, \qquad
            M_{[k, j]} = 1 \text{ if } j \ge k \text{ else } 0 \\
        h_{t, [k]} &= \begin{cases} \phi(a_{t, [k]}) & t \bmod T_k = 0 \\
            h_{t-1, [k]} & \text{otherwise} \end{cases}, \qquad y_t = h_t

    where ``[k]`` selects the units (rows) or columns of module ``k`` and
    :math:`\phi` is ``tanh`` or ``relu``. The paper's output layer
    ``y_O = f_O(W_O h)`` is left to the model's readout. Parameters stored: ``H I + H^2``
    weights plus ``H`` biases, of which ``H I + m^2 g (g + 1) / 2`` weights are used.

    Args:
      input_size: ``I``. hidden_size: ``H``, a multiple of ``num_modules``.
      num_modules: ``g`` (default 4); ignored when ``periods`` is given.
      periods: strictly increasing positive integers, one per module (default powers
        of two).
      nonlinearity: ``"tanh"`` (default) or ``"relu"``.
      bias: if ``False``, ``b`` is ``None``.
      dtype: parameter dtype.
      input_init, recurrent_init, bias_init: ``(key, shape, dtype) -> Array``; the
        default for all is PyTorch's ``U(-1/sqrt(H), 1/sqrt(H))``.

    Returns:
      A :class:`~jaxrnn.Cell` with params :class:`ClockworkParams`, carry
      :class:`ClockworkCarry` (zeros) and output ``y = h (H,)``.
    """
    check_positive_int("input_size", input_size)
    check_positive_int("hidden_size", hidden_size)
    dtype = check_float_dtype("dtype", dtype)
    phi = nonlinearity_fn(nonlinearity)
    if periods is None:
        check_positive_int("num_modules", num_modules)
        periods = tuple(2**k for k in range(num_modules))
    else:
        if not isinstance(periods, (tuple, list)) or not periods:
            raise ValueError(f"periods must be a non-empty tuple of integers, got {periods!r}")
        for p in periods:
            if isinstance(p, bool) or not isinstance(p, int) or p < 1:
                raise ValueError(f"periods must be positive integers, got {periods!r}")
        if any(b <= a for a, b in itertools.pairwise(periods)):
            raise ValueError(f"periods must be strictly increasing, got {periods!r}")
        periods = tuple(periods)
    g = len(periods)
    if hidden_size % g:
        raise ValueError(
            f"hidden_size must be a multiple of the number of modules ({g}), got {hidden_size}"
        )
    H, m = hidden_size, hidden_size // g
    module = np.repeat(np.arange(g), m)  # module of each unit
    mask_np = (module[None, :] >= module[:, None]).astype(np.float64)
    unit_period_np = np.repeat(np.asarray(periods, np.float64), m)
    cycle = float(math.lcm(*periods))
    default = pytorch_default(H)

    def init(key):
        k_w, k_u, k_b = jax.random.split(key, 3)
        mask = jnp.asarray(mask_np, dtype)
        return ClockworkParams(
            w_ih=(input_init or default)(k_w, (H, input_size), dtype),
            w_hh=(recurrent_init or default)(k_u, (H, H), dtype) * mask,
            b=(bias_init or default)(k_b, (H,), dtype) if bias else None,
        )

    def initial_carry(params):
        dt = params.w_hh.dtype
        return ClockworkCarry(jnp.zeros((H,), dt), jnp.zeros((), dt))

    def step(params, carry, x):
        dt = params.w_hh.dtype
        t = jnp.round(carry.t)  # exact integers; rounding keeps a perturbed counter valid
        active = jnp.mod(t, jnp.asarray(unit_period_np, dt)) == 0
        a = params.w_ih @ x + (params.w_hh * jnp.asarray(mask_np, dt)) @ carry.h
        if params.b is not None:
            a = a + params.b
        h = jnp.where(active, phi(a), carry.h)
        return ClockworkCarry(h, jnp.mod(t + 1, jnp.asarray(cycle, dt))), h

    return Cell(init, initial_carry, step, input_size=input_size, output_size=H)
