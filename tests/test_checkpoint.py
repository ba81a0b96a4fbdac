"""Checkpoints: exact round trip of params, optax state, step and PRNG key; atomic
writes; truncated, corrupted, foreign and mismatched files raise CheckpointError."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxrnn.checkpoint import CheckpointError, load_checkpoint, read_metadata, save_checkpoint
from jaxrnn.models import make_layer, sequence_model
from jaxrnn.train import TrainState, make_optimizer


def _state(seed=0):
    model = sequence_model(make_layer("lstm", 3, 4, num_layers=2, dtype=jnp.float64), 5)
    params = model.init(jax.random.key(seed))
    opt = make_optimizer("adam", 1e-3, decay_steps=10)
    opt_state = opt.init(params)
    # Take one real step so the Adam moments and count are non-trivial.
    grads = jax.tree_util.tree_map(lambda p: jnp.full_like(p, 0.1), params)
    with jax.numpy_dtype_promotion("standard"):  # optax's schedule mixes int32 and floats
        updates, opt_state = opt.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    return TrainState(params, opt_state, jnp.asarray(7, jnp.int32), jax.random.key(42 + seed))


def _raw(tree):
    tree = jax.tree_util.tree_map(
        lambda x: jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x,
        tree,
    )
    return jax.tree_util.tree_leaves(tree)


def test_round_trip_is_exact_and_keeps_structure(tmp_path):
    state = _state()
    path = save_checkpoint(tmp_path / "a" / "ck.msgpack", state, metadata={"note": [1, 2.5]})
    template = _state(seed=1)  # different values, same structure
    restored, meta = load_checkpoint(path, template)
    assert meta == {"note": [1, 2.5]}
    assert read_metadata(path) == meta
    assert jax.tree_util.tree_structure(restored) == jax.tree_util.tree_structure(state)
    for a, b in zip(_raw(restored), _raw(state)):
        assert np.asarray(a).dtype == np.asarray(b).dtype
        np.testing.assert_array_equal(a, b)
    # The key is a usable typed key again and draws the same numbers.
    np.testing.assert_array_equal(
        jax.random.normal(restored.key, (3,)), jax.random.normal(state.key, (3,))
    )
    # Without a template: plain nested dicts of numpy arrays.
    raw, _ = load_checkpoint(path)
    assert int(raw["step"]) == 7


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path, monkeypatch):
    path = tmp_path / "ck.msgpack"
    save_checkpoint(path, _state())
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, _state(seed=3))
    monkeypatch.undo()
    assert path.read_bytes() == before  # the old checkpoint survives a failed write
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.msgpack"]


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda b: b[: len(b) // 2], "truncated"),
        (lambda b: b[:10], "truncated"),
        (lambda b: b[:-1] + bytes([b[-1] ^ 0xFF]), "corrupted"),
        (lambda b: b[:60] + bytes([b[60] ^ 0x01]) + b[61:], "corrupted"),
        (lambda b: b"NOTACKPT" + b[8:], "not a jaxrnn checkpoint"),
        (lambda b: b"", "truncated"),
    ],
)
def test_damaged_files_raise_a_clear_error(tmp_path, damage, message):
    path = tmp_path / "ck.msgpack"
    save_checkpoint(path, _state())
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path, _state())
    assert issubclass(CheckpointError, ValueError)


def test_missing_file_and_wrong_template_raise(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.msgpack")
    path = save_checkpoint(tmp_path / "ck.msgpack", _state())
    small = sequence_model(make_layer("lstm", 3, 2, num_layers=2, dtype=jnp.float64), 5)
    bad = _state()._replace(params=small.init(jax.random.key(0)))
    with pytest.raises(CheckpointError, match="does not fit the template"):
        load_checkpoint(path, bad)
    with pytest.raises(CheckpointError, match="does not fit the template"):
        load_checkpoint(path, {"other": jnp.zeros(3)})
