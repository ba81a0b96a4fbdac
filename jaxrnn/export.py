"""Export a trained model as a serialised ``jax.export`` artifact (StableHLO).

:func:`export_model` closes a model's ``apply`` over its trained params, traces it
once with ``jax.export`` (the leading axis of every input may be symbolic, so one
artifact serves every batch size) and returns the serialised bytes. The artifact holds
the compiled computation and the weights as constants: loading it needs ``jax`` only,
not jaxrnn or the Python code that built the model::

    import jax, numpy as np
    exported = jax.export.deserialize(open("model.jaxexport", "rb").read())
    y = exported.call(np.asarray(x))          # x: the shapes and dtypes it was exported for

(:func:`load_model` is that, for convenience.) The artifact is lowered for the current
backend unless ``platforms=("cpu", "cuda", "tpu")`` asks for several; ``jax.export``
guarantees that artifacts keep loading in newer JAX versions for its compatibility
window (six months).

ONNX (for runtimes without JAX): there is no direct JAX -> ONNX exporter for jaxrnn's
scans (jax2onnx cannot express the reversed scan of a bidirectional layer). The route
is through PyTorch: :func:`jaxrnn.to_torch` gives a ``torch.nn.LSTM``/``GRU``/``RNN``
with the same weights, which ``torch.onnx.export`` writes as ONNX's own
``LSTM``/``GRU``/``RNN`` operators (bidirectional included)::

    module = jaxrnn.to_torch(layer, params).eval()   # jaxrnn.nn layer, float32
    torch.onnx.export(module, (x,), "model.onnx", dynamo=True,
                      dynamic_shapes=({0: torch.export.Dim("batch")},))

``tests/test_export.py`` runs the result with onnxruntime (whose LSTM kernel is
float32-only) against jaxrnn.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax

from jaxrnn.base import Params
from jaxrnn.cells import _onednn

__all__ = ["export_model", "load_model"]


def _spec(x: Any, batch: Any) -> jax.ShapeDtypeStruct:
    shape = getattr(x, "shape", None)
    dtype = getattr(x, "dtype", None)
    if shape is None or dtype is None:
        raise ValueError(f"example inputs must be arrays (or jax.ShapeDtypeStruct), got {x!r}")
    if batch is not None:
        if len(shape) == 0:
            raise ValueError("batch_size='dynamic' needs inputs with a leading batch axis")
        shape = (batch, *shape[1:])
    return jax.ShapeDtypeStruct(shape, dtype)


def export_model(
    apply: Callable[..., Any],
    params: Params,
    *example_inputs: Any,
    dynamic_batch: bool = True,
    platforms: Sequence[str] | None = None,
    path: str | os.PathLike | None = None,
) -> bytearray:
    """Serialise ``x... -> apply(params, x...)`` with ``jax.export``.

    Args:
      apply: ``apply(params, *inputs) -> outputs`` (any pytree of arrays), e.g. a
        :mod:`jaxrnn.nn` layer's ``apply`` or ``lambda p, x:
        jaxrnn.models.apply_batch(model, p, x)``.
      params: the trained params; baked into the artifact as constants.
      example_inputs: arrays or ``jax.ShapeDtypeStruct`` giving the inputs' shapes and
        dtypes.
      dynamic_batch: make the leading axis of every input one symbolic dimension
        ``b`` (the artifact then accepts any batch size; every input must share it).
      platforms: lowering platforms (default: the current backend).
      path: if given, also write the bytes there.

    Returns:
      The serialised artifact (``jax.export.Exported.serialize()``).
    """
    if not callable(apply):
        raise ValueError(f"apply must be callable (params, *inputs) -> outputs, got {apply!r}")
    if not example_inputs:
        raise ValueError("give at least one example input (an array or jax.ShapeDtypeStruct)")
    batch = jax.export.symbolic_shape("b")[0] if dynamic_batch else None
    specs = [_spec(x, batch) for x in example_inputs]

    def fn(*inputs):
        return apply(params, *inputs)

    kwargs = {} if platforms is None else {"platforms": tuple(platforms)}
    # An artifact holds only StableHLO: the LSTM and GRU on oneDNN (a custom call of
    # this installation) are traced on the XLA path instead.
    with _onednn.disabled():
        blob = jax.export.export(jax.jit(fn), **kwargs)(*specs).serialize()
    if path is not None:
        Path(path).write_bytes(bytes(blob))
    return blob


def load_model(artifact: bytes | bytearray | str | os.PathLike) -> Callable[..., Any]:
    """The ``call`` of a deserialised artifact (bytes, or a path to them)."""
    if isinstance(artifact, (str, os.PathLike)):
        artifact = Path(artifact).read_bytes()
    return jax.export.deserialize(bytearray(artifact)).call
