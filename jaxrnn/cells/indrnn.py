"""Independently recurrent cell (IndRNN): an element-wise (diagonal) recurrence."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxrnn.base import Cell, configured
from jaxrnn.cells._common import check_float_dtype, check_positive_int, nonlinearity_fn
from jaxrnn.initializers import Initializer, pytorch_default


class IndRNNParams(NamedTuple):
    """IndRNN parameters: ``w_ih (H, I)``, recurrent vector ``u (H,)``, ``b (H,)``.

    ``b`` is ``None`` when built with ``bias=False``.
    """

    w_ih: jax.Array
    u: jax.Array
    b: jax.Array | None


@configured("indrnn")
def indrnn(
    input_size: int,
    hidden_size: int,
    *,
    nonlinearity: str = "tanh",
    bias: bool = True,
    dtype=jnp.float32,
    input_init: Initializer | None = None,
    recurrent_init: Initializer | None = None,
    bias_init: Initializer | None = None,
) -> Cell:
    r"""Independently recurrent neural network cell (Li et al., CVPR 2018).

    For one example with ``x (I,)`` and carry ``h (H,)``:

    .. math::

        h_t = \phi(W_{ih} x_t + u \odot h_{t-1} + b), \qquad y_t = h_t

    with :math:`\phi` = ``tanh`` or ``relu``. Each unit sees only its own past
    (``d h_t / d h_{t-1} = diag(phi'(a_t) u)``) and every parameter entry feeds one unit,
    so the cell is declared ``diagonal=True`` and exact RTRL costs ``O(params)`` per
    step (:mod:`jaxrnn.grad.diagonal`).

    Args:
      input_size: ``I``. hidden_size: ``H``.
      nonlinearity: ``"tanh"`` (default) or ``"relu"``.
      bias: if ``False``, ``b`` is ``None``.
      dtype: parameter dtype.
      input_init, recurrent_init, bias_init: ``(key, shape, dtype) -> Array``; the
        default for all is PyTorch's ``U(-1/sqrt(H), 1/sqrt(H))`` (``|u| < 1`` keeps
        tanh units contracting; Li et al. constrain ``|u|`` to bound gradients over
        ``T`` steps, and use larger ``u`` for long memory).

    Returns:
      A :class:`~jaxrnn.Cell` with params :class:`IndRNNParams`, carry ``h (H,)``
      (zeros), output ``y = h (H,)`` and ``diagonal=True``.
    """
    check_positive_int("input_size", input_size)
    check_positive_int("hidden_size", hidden_size)
    dtype = check_float_dtype("dtype", dtype)
    phi = nonlinearity_fn(nonlinearity)
    default = pytorch_default(hidden_size)

    def init(key):
        k_w, k_u, k_b = jax.random.split(key, 3)
        return IndRNNParams(
            w_ih=(input_init or default)(k_w, (hidden_size, input_size), dtype),
            u=(recurrent_init or default)(k_u, (hidden_size,), dtype),
            b=(bias_init or default)(k_b, (hidden_size,), dtype) if bias else None,
        )

    def initial_carry(params):
        return jnp.zeros((hidden_size,), params.u.dtype)

    def step(params, h, x):
        a = params.w_ih @ x + params.u * h
        if params.b is not None:
            a = a + params.b
        h = phi(a)
        return h, h

    return Cell(
        init,
        initial_carry,
        step,
        input_size=input_size,
        output_size=hidden_size,
        diagonal=True,
    )
