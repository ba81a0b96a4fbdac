r"""Mixed precision for any cell or layer: low-precision weights and inputs, a
float32 carry and float32 accumulation."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxrnn.base import Cell, Layer, Projection, configured
from jaxrnn.cells._common import check_float_dtype


def _cast(tree: Any, dtype) -> Any:
    """Every floating leaf of ``tree`` as ``dtype`` (other leaves unchanged)."""

    def one(a):
        if hasattr(a, "dtype") and jnp.issubdtype(a.dtype, jnp.floating):
            return a.astype(dtype)
        return a

    return jax.tree_util.tree_map(one, tree)


@configured("mixed_precision")
def mixed_precision(
    inner: Cell | Layer,
    *,
    param_dtype=jnp.bfloat16,
    compute_dtype=jnp.float32,
) -> Cell | Layer:
    r"""``inner`` with parameters stored in ``param_dtype`` (bfloat16) and every step
    computed in ``compute_dtype`` (float32).

    For params :math:`\theta` in bfloat16, an input :math:`x_t` in bfloat16 (or any
    float) and the carry :math:`c` in float32:

    .. math::

        (c_t, y_t) = \text{inner.step}(\text{f32}(\theta), c_{t-1}, \text{f32}(x_t))

    The product of two bfloat16 numbers (8-bit significands) is exact in float32
    (24 bits), so every matrix product is a bfloat16 x bfloat16 product accumulated in
    float32, the ``preferred_element_type=float32`` contraction of mixed-precision
    hardware (Micikevicius et al. 2018, "Mixed Precision Training"; Kalamkar et al.
    2019 for bfloat16). The carry (``h``, and the LSTM's cell state ``c``, the sum
    that must not lose small increments over long sequences), the gates and the
    outputs stay in float32. Only storage and inputs are bfloat16: parameters take half
    the memory and gradients with respect to them come back in bfloat16.

    Args:
      inner: a :class:`~jaxrnn.Cell` or a :class:`~jaxrnn.Layer` (for a
        :mod:`jaxrnn.nn` layer, pass its ``.layer`` and batch with
        :func:`jaxrnn.apply_batched`). Build it with ``dtype=compute_dtype`` (the
        factories' default float32): its ``init`` draws the weights, which are then
        rounded to ``param_dtype``.
      param_dtype: storage dtype of the floating parameters (default bfloat16).
      compute_dtype: dtype of the arithmetic, the carry and the outputs (default
        float32).

    Returns:
      The same kind of object: ``init`` returns ``inner``'s params rounded to
      ``param_dtype``; ``initial_carry`` is in ``compute_dtype``; ``step`` (or
      ``apply``) casts params and inputs up before calling ``inner``'s. A cell keeps
      ``inner``'s input projection, whole-sequence path (the engine's fused path, with
      the weights cast once per sequence), ``reset``, sizes and ``diagonal``.
    """
    if not isinstance(inner, (Cell, Layer)):
        raise ValueError(f"inner must be a jaxrnn.Cell or jaxrnn.Layer, got {type(inner).__name__}")
    param_dtype = check_float_dtype("param_dtype", param_dtype)
    compute_dtype = check_float_dtype("compute_dtype", compute_dtype)

    def up(params):
        return _cast(params, compute_dtype)

    def init(key):
        return _cast(inner.init(key), param_dtype)

    def initial_carry(params, **kwargs):
        return _cast(inner.initial_carry(up(params), **kwargs), compute_dtype)

    if isinstance(inner, Layer):

        def apply(params, xs, carry=None, **kwargs):
            return inner.apply(up(params), _cast(xs, compute_dtype), carry, **kwargs)

        return Layer(init, initial_carry, apply, inner.input_size, inner.output_size)

    def step(params, carry, x):
        return inner.step(up(params), carry, _cast(x, compute_dtype))

    projection = None
    if inner.projection is not None:
        proj = inner.projection
        projection = Projection(
            lambda p, x: proj.project(up(p), _cast(x, compute_dtype)),
            lambda p, carry, u: proj.step(up(p), carry, u),
        )
    sequence = None
    if inner.sequence is not None:
        seq = inner.sequence

        def sequence(params, xs, carry, **kwargs):
            return seq(up(params), _cast(xs, compute_dtype), carry, **kwargs)

    reset = None
    if inner.reset is not None:
        inner_reset = inner.reset

        def reset(params, carry):
            return _cast(inner_reset(up(params), carry), compute_dtype)

    return Cell(
        init,
        initial_carry,
        step,
        inner.input_size,
        inner.output_size,
        inner.diagonal,
        projection,
        sequence,
        reset,
    )
