"""Data parallelism with ``jax.sharding``: one ``Mesh`` axis over the batch.

:func:`jaxrnn.train.fit` uses these, so the same ``fit`` call runs on one CPU, on all
the devices of one machine, and on several machines:

- :func:`batch_mesh`: a 1-D ``Mesh`` named ``"batch"`` over the devices (default: all
  of ``jax.devices()``, every process's).
- :func:`shard_batch`: every array of a batch placed with
  ``NamedSharding(mesh, P("batch"))``: its leading (example) axis is split evenly
  over the devices. The leading size must be divisible by the number of devices.
- :func:`replicate` (and its sharding, :func:`replicated`): params, optimizer state
  and PRNG key placed with ``NamedSharding(mesh, P())`` (a full copy on every device).
- :func:`host_local`: a replicated tree as arrays this process can read (for
  checkpoints written by process 0 only).

With the batch split and the parameters replicated, ``jax.jit`` compiles the train
step SPMD: each device computes the loss terms of its examples, the compiler inserts
the all-reduce of the gradient, and every device applies the same optimizer update.
Nothing else changes: the loss is still the mean over the whole batch, so the run
equals the one-device run up to the order of floating-point sums
(``tests/test_data_parallel.py``).

Several machines (the existing engine for going past one host): start the same
program on every host and call, before anything else touches JAX::

    jax.distributed.initialize(coordinator_address="host0:1234",
                               num_processes=N, process_id=i)

(on Cloud TPU, SLURM and Open MPI the arguments are found automatically:
``jax.distributed.initialize()``). Then ``jax.devices()`` lists every host's devices
and ``batch_mesh()`` spans them all. Every process must compute the same global batch
(true for :func:`jaxrnn.train.batch_sampler`, a pure function of ``(seed, step)``,
and for the tasks' samplers); each one places only the shards of its own devices.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = ["BATCH_AXIS", "batch_mesh", "host_local", "replicate", "replicated", "shard_batch"]

BATCH_AXIS = "batch"


def batch_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D :class:`jax.sharding.Mesh` with axis ``"batch"`` over ``devices``
    (default: ``jax.devices()``, all devices of all processes)."""
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise ValueError("devices must name at least one device")
    return Mesh(np.asarray(devices), (BATCH_AXIS,))


def _check_mesh(mesh: Any) -> Mesh:
    if not isinstance(mesh, Mesh) or BATCH_AXIS not in mesh.axis_names:
        raise ValueError(
            f"mesh must be a jax.sharding.Mesh with an axis named {BATCH_AXIS!r} "
            f"(see jaxrnn.data_parallel.batch_mesh), got {mesh!r}"
        )
    return mesh


def shard_batch(batch: Any, mesh: Mesh) -> Any:
    """Place every array of ``batch`` (a pytree) split along its leading axis over the
    mesh's ``"batch"`` axis. Scalars are replicated.

    Raises:
      ValueError: a leading size not divisible by the number of devices on the axis.
    """
    mesh = _check_mesh(mesh)
    n = mesh.shape[BATCH_AXIS]
    split = NamedSharding(mesh, PartitionSpec(BATCH_AXIS))
    whole = NamedSharding(mesh, PartitionSpec())

    def sharding(path, x):
        if np.ndim(x) == 0:
            return whole
        if np.shape(x)[0] % n:
            raise ValueError(
                f"batch{jax.tree_util.keystr(path)} has leading size {np.shape(x)[0]}, which "
                f"must be divisible by the {n} devices of the mesh (choose batch_size as a "
                f"multiple of {n})"
            )
        return split

    return jax.device_put(batch, jax.tree_util.tree_map_with_path(sharding, batch))


def replicated(mesh: Mesh) -> NamedSharding:
    """``NamedSharding(mesh, P())``: a full copy on every device."""
    return NamedSharding(_check_mesh(mesh), PartitionSpec())


def replicate(tree: Any, mesh: Mesh) -> Any:
    """A full copy of every array of ``tree`` on every device of ``mesh``."""
    return jax.device_put(tree, replicated(mesh))


def host_local(tree: Any) -> Any:
    """Replicated arrays that span other processes' devices as this process's copy.

    ``jax.device_get`` of an array that is not fully addressable fails; a replicated
    array's first local shard is the whole value. Other leaves are returned as they are.
    """

    def local(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            if not x.sharding.is_fully_replicated:
                raise ValueError("only replicated arrays can be read on one process")
            return x.addressable_data(0)
        return x

    return jax.tree_util.tree_map(local, tree)
