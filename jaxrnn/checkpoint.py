"""Checkpoints: any pytree (params, optimizer state, step, PRNG key) in a safe format.

The payload is ``flax.serialization`` msgpack (no pickle: loading never runs code) of
``{"state": to_state_dict(tree), "metadata": <JSON text>}``, framed by a header::

    b"JAXRNNCK" | version (1 byte) | payload length (8 bytes, little endian)
               | SHA-256 of the payload (32 bytes) | payload

:func:`load_checkpoint` checks the magic, the length and the digest before it decodes,
so a truncated or corrupted file raises :class:`CheckpointError` (a ``ValueError``)
with a one-line reason naming the file; so does a file whose checksum is valid but
whose payload is not what :func:`save_checkpoint` writes. :func:`save_checkpoint`
writes to a temporary file ``.<name>.*.tmp`` in the same directory, flushes and
``fsync``\\ s it, then ``os.replace``\\ s it over the target, so a crash mid-write leaves
the previous checkpoint intact; the next save removes the temporary file a killed
save left behind (saving to one path from two processes at once is not supported).

Typed PRNG keys (``jax.random.key``) are stored as their raw ``key_data`` and wrapped
again on restore from the template's key implementation.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import struct
import tempfile
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

__all__ = ["CheckpointError", "load_checkpoint", "read_metadata", "save_checkpoint"]

MAGIC = b"JAXRNNCK"
VERSION = 1
_HEADER = struct.Struct("<8sBQ32s")


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, corrupted or does not fit the template."""


def _is_key(x) -> bool:
    return isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def _unwrap_keys(tree):
    return jax.tree_util.tree_map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)


def save_checkpoint(path: str | os.PathLike, tree: Any, *, metadata: dict | None = None) -> Path:
    """Atomically write ``tree`` (and JSON-serialisable ``metadata``) to ``path``.

    Returns the path written. Parent directories are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = serialization.to_state_dict(jax.device_get(_unwrap_keys(tree)))
    payload = serialization.msgpack_serialize(
        {"state": state, "metadata": json.dumps(metadata or {}, sort_keys=True)}
    )
    header = _HEADER.pack(MAGIC, VERSION, len(payload), hashlib.sha256(payload).digest())
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):  # a killed save's
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(header)
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _read_payload(path: Path) -> dict:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise CheckpointError(f"checkpoint {str(path)!r} is a directory, not a file") from None
    if len(data) < _HEADER.size:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is truncated: {len(data)} bytes, shorter than the header"
        )
    magic, version, length, digest = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise CheckpointError(f"{str(path)!r} is not a jaxrnn checkpoint (bad magic bytes)")
    if version != VERSION:
        raise CheckpointError(f"checkpoint {str(path)!r} has unsupported version {version}")
    payload = data[_HEADER.size :]
    if len(payload) != length:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is truncated: payload has {len(payload)} of {length} bytes"
        )
    if hashlib.sha256(payload).digest() != digest:
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupted: SHA-256 mismatch")
    try:
        raw = serialization.msgpack_restore(payload)
    except Exception as e:
        raise CheckpointError(f"checkpoint {str(path)!r} cannot be decoded: {e}") from None
    if not (isinstance(raw, dict) and set(raw) == {"state", "metadata"}):
        got = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
        raise CheckpointError(
            f"checkpoint {str(path)!r} has a valid checksum but not a jaxrnn payload: "
            f"expected the entries ['metadata', 'state'], got {got}"
        )
    try:
        metadata = json.loads(raw["metadata"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has unreadable metadata (not JSON text): {e}"
        ) from None
    if not isinstance(metadata, dict):
        raise CheckpointError(
            f"checkpoint {str(path)!r} has metadata {type(metadata).__name__}, expected a dict"
        )
    return {"state": raw["state"], "metadata": metadata}


def read_metadata(path: str | os.PathLike) -> dict:
    """The JSON metadata stored with a checkpoint (verified like :func:`load_checkpoint`)."""
    return _read_payload(Path(path))["metadata"]


def load_checkpoint(path: str | os.PathLike, target: Any = None) -> tuple[Any, dict]:
    """Read a checkpoint written by :func:`save_checkpoint`: ``(tree, metadata)``.

    With ``target`` (a pytree of the same structure, e.g. freshly initialised params
    and optimizer state), the result has ``target``'s structure, NamedTuples and typed
    PRNG keys, and every leaf must match the template's shape and dtype. Without it,
    the raw nested dicts of numpy arrays are returned.

    Raises:
      CheckpointError: missing, truncated or corrupted file, or a template mismatch.
    """
    path = Path(path)
    raw = _read_payload(path)
    metadata = raw["metadata"]
    if target is None:
        return raw["state"], metadata
    template = _unwrap_keys(target)
    try:
        tree = serialization.from_state_dict(template, raw["state"])
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise CheckpointError(f"checkpoint {str(path)!r} does not fit the template: {e}") from None
    leaves_t, treedef = jax.tree_util.tree_flatten(template)
    try:
        leaves = treedef.flatten_up_to(tree)
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"checkpoint {str(path)!r} does not fit the template: {e}") from None
    out = []
    for want, got, orig in zip(leaves_t, leaves, jax.tree_util.tree_leaves(target)):
        got = np.asarray(got) if isinstance(got, (np.ndarray, np.generic, int, float)) else None
        if got is None:
            raise CheckpointError(
                f"checkpoint {str(path)!r} does not fit the template: a leaf is not an array"
            )
        want_dtype = np.dtype(getattr(want, "dtype", None) or np.result_type(want))
        if np.shape(want) != got.shape or want_dtype != got.dtype:
            raise CheckpointError(
                f"checkpoint {str(path)!r} does not fit the template: a leaf has shape "
                f"{got.shape} {got.dtype}, expected {np.shape(want)} {want_dtype}"
            )
        leaf = jnp.asarray(got)
        if _is_key(orig):
            leaf = jax.random.wrap_key_data(leaf, impl=jax.random.key_impl(orig))
        out.append(leaf)
    return jax.tree_util.tree_unflatten(treedef, out), metadata
