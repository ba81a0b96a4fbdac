"""Training with optax: a pure compiled train step, a ``fit`` loop, gradient methods.

- :func:`default_optimizer`: ``optax.chain(clip_by_global_norm(c), adam(lr))``; clipping
  the global gradient norm (Pascanu et al. 2013) is what seed 001 recommends against
  exploding gradients.
- :func:`make_train_step`: ``train_step(params, opt_state, batch, key) -> (params,
  opt_state, metrics)`` from a loss ``loss_fn(params, batch, key) -> (loss, metrics)``
  and any ``optax.GradientTransformation``; gradients by ``jax.value_and_grad`` (BPTT
  through the scan) unless a ``grad_fn`` is given.
- :func:`batch_sampler`: the batch at step ``s`` is a pure function of ``(seed, s)``
  (epoch-wise permutations), so training resumed from a checkpoint sees exactly the
  batches an uninterrupted run sees.
- :func:`fit`: the loop, with a tqdm bar, periodic evaluation, a metrics history, early
  stopping and atomic checkpoints (:mod:`jaxrnn.checkpoint`) of params, optimizer state,
  step and PRNG key; ``resume=True`` continues bit-identically.
- :func:`gradient_methods`: :mod:`jaxrnn.grad`'s registry of sequence-gradient methods
  as ``factory(cell, step_loss, **options) -> grad_fn`` with the common call
  ``grad_fn((cell_params, head_params), xs, targets, carry0=None, *, mask=None,
  key=None) -> (loss, (cell_grads, head_grads))``.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from jaxrnn import grad as _grad
from jaxrnn.base import Array, Params, PRNGKey
from jaxrnn.checkpoint import load_checkpoint, save_checkpoint
from jaxrnn.checks import check_bool, check_finite, check_nonneg_int, check_positive_int
from jaxrnn.data_parallel import batch_mesh, host_local, replicate, replicated, shard_batch

__all__ = [
    "OPTIMIZERS",
    "EarlyStopping",
    "FitResult",
    "TrainState",
    "batch_sampler",
    "compare_methods",
    "default_optimizer",
    "evaluate_batched",
    "fit",
    "gradient_methods",
    "make_optimizer",
    "make_train_step",
    "memory_bytes",
    "method_grad_fn",
]

Batch = Mapping[str, Any]
LossFn = Callable[[Params, Batch, PRNGKey], tuple[Array, dict]]

OPTIMIZERS: dict[str, Callable[[float], optax.GradientTransformation]] = {
    "adam": optax.adam,
    "adamw": optax.adamw,
    "sgd": optax.sgd,
    "momentum": lambda lr: optax.sgd(lr, momentum=0.9),
    "rmsprop": optax.rmsprop,
    "adagrad": optax.adagrad,
}


def make_optimizer(
    name: str = "adam",
    learning_rate: float = 1e-3,
    *,
    clip_norm: float | None = 1.0,
    decay_steps: int | None = None,
) -> optax.GradientTransformation:
    """``optax.chain(clip_by_global_norm(clip_norm), <name>(learning_rate))``.

    ``name`` is one of :data:`OPTIMIZERS`; ``clip_norm=None`` (or 0) drops the clipping.
    With ``decay_steps`` the learning rate follows
    ``optax.cosine_decay_schedule(learning_rate, decay_steps, alpha=0.01)``.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {name!r}")
    learning_rate = check_finite("learning_rate", learning_rate, positive=True)
    if clip_norm is not None:
        clip_norm = check_finite("clip_norm", clip_norm)
        if clip_norm < 0:
            raise ValueError(f"clip_norm must be a positive number, 0 or None, got {clip_norm}")
    if decay_steps is not None:
        decay_steps = check_nonneg_int("decay_steps", decay_steps)
    lr = learning_rate
    if decay_steps:
        lr = optax.cosine_decay_schedule(learning_rate, decay_steps, alpha=0.01)
    opt = OPTIMIZERS[name](lr)
    if clip_norm:
        return optax.chain(optax.clip_by_global_norm(clip_norm), opt)
    return opt


def default_optimizer(
    learning_rate: float = 1e-3, clip_norm: float | None = 1.0
) -> optax.GradientTransformation:
    """Global-norm clipping at ``clip_norm`` then Adam (Kingma & Ba 2015)."""
    return make_optimizer("adam", learning_rate, clip_norm=clip_norm)


# ------------------------------------------------------------------------- train step


def make_train_step(
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
    *,
    grad_fn: Callable[[Params, Batch, PRNGKey], tuple[Array, dict, Params]] | None = None,
    jit: bool = True,
) -> Callable[[Params, Any, Batch, PRNGKey], tuple[Params, Any, dict]]:
    """A pure ``train_step(params, opt_state, batch, key) -> (params, opt_state, metrics)``.

    Args:
      loss_fn: ``(params, batch, key) -> (loss, metrics)`` (``metrics`` a dict of scalars;
        ``key`` for dropout or sampling).
      optimizer: any ``optax.GradientTransformation``.
      grad_fn: optional ``(params, batch, key) -> (loss, metrics, grads)`` replacing
        ``jax.value_and_grad(loss_fn, has_aux=True)`` (e.g. an RTRL gradient).
      jit: compile with ``jax.jit``.

    ``metrics`` returned contains ``"loss"`` and ``"grad_norm"`` (global norm before the
    optimizer) plus the loss's own metrics.
    """

    def step(params, opt_state, batch, key):
        if grad_fn is None:
            (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch, key)
        else:
            loss, metrics, grads = grad_fn(params, batch, key)
        # optax mixes its int32 step count with floats (schedules); let it, even when
        # the caller runs JAX with strict dtype promotion.
        with jax.numpy_dtype_promotion("standard"):
            updates, opt_state = optimizer.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
        metrics = {**metrics, "loss": loss, "grad_norm": optax.tree.norm(grads)}
        return params, opt_state, metrics

    return jax.jit(step) if jit else step


# ------------------------------------------------------------------------------ data


def _num_examples(data: Mapping[str, np.ndarray]) -> int:
    sizes = {k: len(v) for k, v in data.items()}
    if not sizes or len(set(sizes.values())) != 1:
        raise ValueError(f"data must be a dict of arrays with equal first dimension, got {sizes}")
    return next(iter(sizes.values()))


def batch_sampler(
    data: Mapping[str, np.ndarray], batch_size: int, seed: int = 0
) -> Callable[[int], dict[str, np.ndarray]]:
    """``batch(step) -> dict`` of ``batch_size`` rows, a pure function of ``(seed, step)``.

    Epoch ``e = step // (N // batch_size)`` uses the permutation
    ``np.random.default_rng([seed, e]).permutation(N)``; the remainder is dropped.
    """
    n = _num_examples(data)
    batch_size = check_positive_int("batch_size", batch_size)
    if batch_size > n:
        raise ValueError(
            f"batch_size must be at most the number of examples ({n}), got {batch_size}"
        )
    per_epoch = n // batch_size
    cache: dict[int, np.ndarray] = {}

    def batch(step: int) -> dict[str, np.ndarray]:
        epoch, i = divmod(int(step), per_epoch)
        if epoch not in cache:
            cache.clear()
            cache[epoch] = np.random.default_rng([seed, epoch]).permutation(n)
        idx = cache[epoch][i * batch_size : (i + 1) * batch_size]
        return {k: v[idx] for k, v in data.items()}

    return batch


def iterate_batches(
    data: Mapping[str, np.ndarray], batch_size: int
) -> Iterator[dict[str, np.ndarray]]:
    """Consecutive batches of ``data`` in order, the last one possibly smaller."""
    n = _num_examples(data)
    for i in range(0, n, batch_size):
        yield {k: v[i : i + batch_size] for k, v in data.items()}


def evaluate_batched(
    metric_fn: Callable[[Params, Batch], dict],
    params: Params,
    data: Mapping[str, np.ndarray],
    batch_size: int = 1000,
) -> dict[str, float]:
    """Example-weighted mean of ``metric_fn(params, batch)`` over ``data`` in batches."""
    n = _num_examples(data)
    totals: dict[str, float] = {}
    for b in iterate_batches(data, batch_size):
        m = len(next(iter(b.values())))
        for k, v in metric_fn(params, b).items():
            totals[k] = totals.get(k, 0.0) + float(v) * m
    return {k: v / n for k, v in totals.items()}


# ------------------------------------------------------------------------------- fit


class TrainState(NamedTuple):
    """What a checkpoint holds: params, optimizer state, step and the PRNG key."""

    params: Params
    opt_state: Any
    step: Array
    key: PRNGKey


class EarlyStopping(NamedTuple):
    """Stop when ``metric`` has not improved by ``min_delta`` for ``patience`` evaluations.

    ``mode`` is ``"max"`` (accuracy) or ``"min"`` (loss). ``restore_best`` returns the
    params of the best evaluation instead of the last.
    """

    metric: str
    mode: str = "max"
    patience: int = 5
    min_delta: float = 0.0
    restore_best: bool = True

    def check(self) -> EarlyStopping:
        """Raise ``ValueError`` on a bad field (:func:`fit` calls it before training)."""
        if not isinstance(self.metric, str):
            raise ValueError(f"early_stopping.metric must be a str, got {self.metric!r}")
        if self.mode not in ("max", "min"):
            raise ValueError(f"early_stopping.mode must be 'max' or 'min', got {self.mode!r}")
        check_positive_int("early_stopping.patience", self.patience)
        if check_finite("early_stopping.min_delta", self.min_delta) < 0:
            raise ValueError(f"early_stopping.min_delta must be >= 0, got {self.min_delta}")
        check_bool("early_stopping.restore_best", self.restore_best)
        return self


class FitResult(NamedTuple):
    """``fit``'s result: final (or best) params, optimizer state, history and state."""

    params: Params
    opt_state: Any
    history: list[dict]
    step: int
    key: PRNGKey
    stopped_early: bool
    best: dict | None


_BLOCK_BYTES = 8 << 20  # host batches copied to the device at once by fit


class _BlockFeed:
    """``fit``'s batches on one device, ``size`` steps per host-to-device copy.

    ``batch(step)`` returns ``(block, index)``: the stacked batches of the steps
    ``start .. start + size - 1`` (on the device) and ``step``'s row in them; the train
    step slices its batch inside ``jit``. One copy of at most about ``_BLOCK_BYTES``
    replaces one transfer per step (about 45 us of host work each, which a step that
    keeps every core busy no longer hides). Batches past the last step are sampled too
    (``sample`` is a pure function of the step), so every block has one shape.
    """

    def __init__(self, sample: Callable[[int], dict[str, np.ndarray]]):
        self.sample = sample
        size = sum(np.asarray(v).nbytes for v in sample(0).values())
        self.size = max(1, min(64, _BLOCK_BYTES // max(size, 1)))
        self.start: int | None = None
        self.block: dict[str, Array] | None = None

    def batch(self, step: int) -> tuple[dict[str, Array], int]:
        if self.start is None or not self.start <= step < self.start + self.size:
            self.start = step
            rows = [self.sample(t) for t in range(step, step + self.size)]
            self.block = jax.device_put({k: np.stack([r[k] for r in rows]) for k in rows[0]})
        return self.block, step - self.start


def _better(mode: str, new: float, old: float | None, delta: float) -> bool:
    if old is None:
        return True
    return new > old + delta if mode == "max" else new < old - delta


def fit(
    loss_fn: LossFn,
    params: Params,
    data: Mapping[str, np.ndarray] | Callable[[int], Batch],
    *,
    steps: int,
    key: PRNGKey,
    optimizer: optax.GradientTransformation | None = None,
    batch_size: int = 32,
    data_seed: int = 0,
    eval_fn: Callable[[Params], dict] | None = None,
    eval_every: int = 0,
    early_stopping: EarlyStopping | None = None,
    checkpoint_path: str | os.PathLike | None = None,
    checkpoint_every: int = 0,
    resume: bool = False,
    grad_fn: Callable | None = None,
    callback: Callable[[int, TrainState, dict | None], None] | None = None,
    progress: bool = True,
    desc: str = "train",
    mesh: jax.sharding.Mesh | None = None,
) -> FitResult:
    """Train ``params`` for ``steps`` optimizer steps.

    Args:
      loss_fn: ``(params, batch, key) -> (loss, metrics)``.
      params: initial parameters (ignored when resuming from a checkpoint).
      data: a dict of arrays with a common first axis (batched by
        :func:`batch_sampler` with ``batch_size`` and ``data_seed``) or a function
        ``step -> batch`` (e.g. a synthetic task's sampler).
      steps: total number of steps (a resumed run continues up to it).
      key: PRNG key; split once per step (``key, sub = split(key)``; ``sub`` goes to
        ``loss_fn``).
      optimizer: an ``optax.GradientTransformation`` (default: :func:`default_optimizer`).
      eval_fn: ``params -> dict`` of metrics, called every ``eval_every`` steps and at
        the end; the record is added to the history with the mean training loss.
      early_stopping: an :class:`EarlyStopping` on a metric of ``eval_fn``; ``eval_fn``
        is called once before training to check that it reports that metric.
      checkpoint_path: file for :mod:`jaxrnn.checkpoint`; written every
        ``checkpoint_every`` steps (if > 0) and at the end.
      resume: continue from ``checkpoint_path`` if it exists; since batches and keys
        are functions of the step, the result equals an uninterrupted run bit for bit.
      grad_fn: passed to :func:`make_train_step`.
      callback: ``callback(step, state, record_or_None)`` after every step.
      progress: show a tqdm progress bar.
      mesh: data parallelism (:mod:`jaxrnn.data_parallel`): a ``Mesh`` with an axis
        ``"batch"``; default :func:`jaxrnn.data_parallel.batch_mesh` over all
        ``jax.devices()`` (one device: the plain single-device run). Every batch is
        split along its leading axis over the devices (its size must be divisible by
        their number), params, optimizer state and key are replicated, and the
        compiled step all-reduces the gradient, so the run equals the one-device run
        up to the order of floating-point sums. Checkpoints are written by process 0
        only and hold plain arrays, so they resume on any number of devices.

    Returns:
      :class:`FitResult`.
    """
    steps = check_nonneg_int("steps", steps)
    eval_every = check_nonneg_int("eval_every", eval_every)
    checkpoint_every = check_nonneg_int("checkpoint_every", checkpoint_every)
    if early_stopping is not None:
        if not isinstance(early_stopping, EarlyStopping):
            raise ValueError(
                f"early_stopping must be an EarlyStopping, got {type(early_stopping).__name__}"
            )
        early_stopping.check()
        if eval_fn is None or eval_every <= 0:
            raise ValueError("early_stopping needs eval_fn and eval_every > 0")
    optimizer = default_optimizer() if optimizer is None else optimizer
    sample = data if callable(data) else batch_sampler(data, batch_size, data_seed)
    mesh = batch_mesh() if mesh is None else mesh
    step_fn = make_train_step(loss_fn, optimizer, grad_fn=grad_fn, jit=False)
    one_device = mesh.devices.size == 1 and mesh.devices.flat[0] == jax.devices()[0]
    # On the default device alone, a dict of arrays goes over in blocks of steps
    # (_BlockFeed) and the step slices its batch; a sampling function's batches, and
    # batches sharded over several devices, go over one step at a time.
    feed = _BlockFeed(sample) if one_device and not callable(data) else None

    def keyed_step(params, opt_state, batch, key):
        # key, sub = split(key) inside the step: one dispatch per step, not two.
        key, sub = jax.random.split(key)
        return (*step_fn(params, opt_state, batch, sub), key)

    def block_step(params, opt_state, block, index, key):
        return keyed_step(params, opt_state, jax.tree_util.tree_map(lambda a: a[index], block), key)

    train_step = jax.jit(keyed_step if feed is None else block_step, out_shardings=replicated(mesh))
    # Several CPU devices (forced host devices, tests): with steps queued ahead, XLA:CPU's
    # in-process all-reduce was seen to miss its rendezvous and abort the process (4
    # devices on 2 cores, about half the runs); finishing each step first avoids it.
    sync_steps = not one_device and any(d.platform == "cpu" for d in mesh.devices.flat)

    state = TrainState(params, optimizer.init(params), jnp.asarray(0, jnp.int32), key)
    history: list[dict] = []
    best: dict | None = None
    best_params = None
    bad_evals = 0
    if resume and checkpoint_path is not None and Path(checkpoint_path).exists():
        state, meta = load_checkpoint(checkpoint_path, state)
        history = meta.get("history", [])
        best = meta.get("best")
        bad_evals = meta.get("bad_evals", 0)
        if early_stopping is not None and early_stopping.restore_best and best is not None:
            best_params = state.params if meta.get("best_is_current") else None
    if early_stopping is not None and int(state.step) < steps:
        # The metric must be one eval_fn reports: ask it once now, not after training.
        keys = {"train_loss", *eval_fn(state.params)}
        if early_stopping.metric not in keys:
            raise ValueError(
                f"early_stopping.metric {early_stopping.metric!r} is not a metric of eval_fn "
                f"(it returns {sorted(keys)})"
            )

    def save(st: TrainState):
        if checkpoint_path is not None and jax.process_index() == 0:
            save_checkpoint(
                checkpoint_path,
                host_local(st),
                metadata={
                    "history": history,
                    "best": best,
                    "bad_evals": bad_evals,
                    "best_is_current": best is not None and best["step"] == int(st.step),
                },
            )

    start = done = int(state.step)
    # The per-step losses stay on the device until an evaluation needs their mean and are
    # then summed on the host in float32, in step order (what an on-device running sum
    # gave). Adding them eagerly, or building a step-count array every step, waits for
    # each step's result: a host sync per step that stops dispatch from running ahead.
    pending: list[Array] = []
    loss_acc, loss_count = np.float32(0.0), 0

    def fold_losses() -> None:
        nonlocal loss_acc
        for v in jax.device_get(pending):
            loss_acc = np.float32(loss_acc + np.float32(v))
        pending.clear()

    t0 = time.perf_counter()
    stopped = False
    bar = tqdm(total=steps, initial=start, desc=desc, disable=not progress, dynamic_ncols=True)
    params, opt_state, _, key = replicate(state, mesh)
    for s in range(start, steps):
        if feed is not None:
            batch = feed.batch(s)
        else:
            batch = (sample(s) if one_device else shard_batch(sample(s), mesh),)
        params, opt_state, metrics, key = train_step(params, opt_state, *batch, key)
        if sync_steps:
            jax.block_until_ready(params)
        done = s + 1
        record = None
        last = done == steps
        if eval_fn is not None:
            pending.append(metrics["loss"])
            loss_count += 1
            if len(pending) >= 1024:  # bound the device scalars held
                fold_losses()
        if eval_fn is not None and ((eval_every > 0 and done % eval_every == 0) or last):
            fold_losses()
            record = {
                "step": done,
                "train_loss": float(loss_acc) / max(loss_count, 1),
                **{k: float(v) for k, v in eval_fn(params).items()},
                "time": time.perf_counter() - t0,
            }
            history.append(record)
            loss_acc, loss_count = np.float32(0.0), 0
            bar.set_postfix({k: f"{v:.4g}" for k, v in record.items() if k not in ("step", "time")})
            if early_stopping is not None:
                value = record[early_stopping.metric]
                if _better(
                    early_stopping.mode, value, best and best["value"], early_stopping.min_delta
                ):
                    best = {"step": done, "value": value}
                    best_params = params
                    bad_evals = 0
                else:
                    bad_evals += 1
                    stopped = bad_evals >= early_stopping.patience
        elif progress and done % 50 == 0:
            bar.set_postfix(loss=f"{float(metrics['loss']):.4g}")
        bar.update(1)
        save_now = checkpoint_path is not None and (
            (checkpoint_every > 0 and done % checkpoint_every == 0) or last or stopped
        )
        if callback is not None or save_now:
            # the step as a host scalar: a device array would be one more dispatch per step
            state = TrainState(params, opt_state, np.asarray(done, np.int32), key)
        if callback is not None:
            callback(done, state, record)
        if save_now:
            save(state)
        if stopped:
            break
    bar.close()
    if early_stopping is not None and early_stopping.restore_best and best_params is not None:
        params = best_params
    return FitResult(params, opt_state, history, done, key, stopped, best)


# ------------------------------------------------------------------- gradient methods


def gradient_methods() -> dict[str, Callable[..., Callable]]:
    """Name -> ``factory(cell, step_loss, **options) -> grad_fn`` for every method of
    :mod:`jaxrnn.grad` (its registry, :data:`jaxrnn.grad.GRADIENT_METHODS`: ``bptt``,
    ``tbptt`` (option ``k``), ``rtrl``, ``snap1``, ``uoro``, ``rflo``).

    ``grad_fn((cell_params, head_params), xs, targets, carry0=None, *, mask=None,
    key=None) -> (loss, (cell_grads, head_grads))``; ``key`` is required by stochastic
    methods (UORO) and ignored by the others, so every method is called the same way.
    """
    return {name: m.grad_fn for name, m in _grad.GRADIENT_METHODS.items()}


def method_grad_fn(
    model,
    cell,
    method: str,
    *,
    kind: str,
    one_hot: int | None = None,
    **options,
) -> Callable[[Params, Batch, PRNGKey], tuple[Array, dict, Params]]:
    """``fit``'s ``grad_fn`` for a one-cell :func:`jaxrnn.models.sequence_model` trained
    with a method of :mod:`jaxrnn.grad` (``jaxrnn train --method``).

    The model's loss becomes a per-step loss of the head (``readout "all"``: every valid
    step, weighted ``1/L``; ``"last"``: the last valid step), the method's ``grad_fn``
    runs per example under ``vmap`` (one key each) and the gradients are averaged over
    the batch. ``kind`` is ``"classify"``, ``"tagging"`` or ``"regress"``; ``one_hot``:
    token inputs to one-hot encode; ``options`` go to the method (those it takes).

    Raises:
      ValueError: an unknown ``method``, or a model that is not one layer read out
        ``"all"`` or ``"last"``.
    """
    if model.readout not in ("all", "last"):
        raise ValueError(
            f"method {method!r} needs a model read out 'last' or 'all', got {model.readout!r}"
        )
    O = model.output_size

    def step_loss(head_params, y, target):  # target = (O values, weight)
        z = model.head(head_params, y)
        w = target[-1]
        if kind == "regress":
            return w * jnp.mean(jnp.square(z - target[:O]))
        return w * optax.softmax_cross_entropy(z, target[:O])

    grad_one = _grad.make_grad_fn(method, cell, step_loss, **options)

    def targets_of(batch, T):
        B = batch["x"].shape[0]
        length = batch.get("length")
        ln = jnp.full((B,), T) if length is None else jnp.asarray(length)
        valid = jnp.arange(T)[None, :] < ln[:, None]
        if kind == "tagging":
            vals = jax.nn.one_hot(batch["y"], O)
            w = valid / jnp.sum(valid, axis=1, keepdims=True)
        else:
            y = batch["y"]
            vals = jax.nn.one_hot(y, O) if kind == "classify" else jnp.asarray(y, jnp.float32)
            vals = jnp.broadcast_to(vals[:, None, :], (B, T, O))
            w = (jnp.arange(T)[None, :] == ln[:, None] - 1).astype(jnp.float32)
        return jnp.concatenate([vals.astype(jnp.float32), w[..., None].astype(jnp.float32)], -1)

    def grad_fn(params, batch, key):
        x = batch["x"]
        if one_hot:
            x = jax.nn.one_hot(x, one_hot)
        x = jnp.asarray(x, jnp.float32)
        tg = targets_of(batch, x.shape[1])
        keys = jax.random.split(key, x.shape[0])
        loss, grads = jax.vmap(lambda xs, t, k: grad_one(params, xs, t, key=k))(x, tg, keys)
        grads = jax.tree_util.tree_map(lambda g: jnp.mean(g, axis=0), grads)
        return jnp.mean(loss), {}, grads

    return grad_fn


def memory_bytes(compiled) -> dict[str, int] | None:
    """XLA's memory analysis of a compiled function (``jax.jit(f).lower(...).compile()``):
    ``{"temp": working memory beyond arguments and outputs, "peak": temp + arguments +
    outputs}`` in bytes, or ``None`` where the backend reports none."""
    try:
        mem = compiled.memory_analysis()
        temp = int(mem.temp_size_in_bytes)
        return {"temp": temp, "peak": temp + mem.argument_size_in_bytes + mem.output_size_in_bytes}
    except Exception:  # not every backend reports memory
        return None


def compare_methods(
    cell,
    step_loss,
    init: Callable[[int], Params],
    streams: Mapping[int, tuple[np.ndarray, np.ndarray]],
    methods: list[str],
    *,
    optimizer: optax.GradientTransformation,
    options: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> tuple[list[dict], dict[str, list[np.ndarray]]]:
    """Train the same model with several gradient methods on streams (``jaxrnn compare``).

    For every method of :data:`jaxrnn.grad.GRADIENT_METHODS` in ``methods`` and every
    ``seed`` of ``streams`` (``seed -> (xs (U, L, I), targets (U, L, ...))``: ``U``
    chunks of ``L`` steps), the parameters ``init(seed)`` get one ``optimizer`` update
    per chunk from the method's gradient of the chunk's summed ``step_loss``.

    Returns ``(rows, curves)``: per method the mean over seeds of ``final_loss`` (mean
    per-step loss over the last fifth of the chunks), ``cosine_to_bptt`` (cosine of the
    method's gradient with BPTT's on the first 4 chunks at the initial parameters),
    ``ms_per_step`` (wall time per time step after the first update) and
    ``peak_mem_mib`` (XLA's memory analysis of the update: temporaries, arguments and
    outputs); ``curves[method]`` holds each seed's per-step loss of every chunk.
    """
    options = dict(options or {})
    rows, curves = [], {}
    for name in methods:
        finals, cosines, times, mems = [], [], [], []
        grad_fn = _grad.make_grad_fn(name, cell, step_loss, **options)
        ref = _grad.make_grad_fn("bptt", cell, step_loss)
        for seed, (x, y) in streams.items():
            xs, ys = jnp.asarray(x), jnp.asarray(y)
            U, L = xs.shape[:2]
            params = init(seed)
            keys = jax.random.split(jax.random.key(seed + 1), U)
            cos = [
                _grad.cosine(
                    grad_fn(params, xs[i], ys[i], key=keys[i])[1], ref(params, xs[i], ys[i])[1]
                )
                for i in range(min(4, U))
            ]
            cosines.append(float(np.mean(cos)))

            def update(p, s, xc, yc, k, grad_fn=grad_fn):
                loss, g = grad_fn(p, xc, yc, key=k)
                with jax.numpy_dtype_promotion("standard"):  # optax's int32 step count
                    u, s = optimizer.update(g, s, p)
                    return optax.apply_updates(p, u), s, loss

            state = optimizer.init(params)
            compiled = jax.jit(update).lower(params, state, xs[0], ys[0], keys[0]).compile()
            mem = memory_bytes(compiled)
            mems.append(math.nan if mem is None else mem["peak"] / 2**20)
            losses = []
            t_start = None
            for i in tqdm(range(U), desc=f"{name}/seed{seed}", disable=not progress):
                if i == 1:
                    jax.block_until_ready(params)
                    t_start = time.perf_counter()
                params, state, loss = compiled(params, state, xs[i], ys[i], keys[i])
                losses.append(loss)
            jax.block_until_ready(params)
            elapsed = time.perf_counter() - (t_start or time.perf_counter())
            per_step = np.asarray(losses) / L
            times.append(1e3 * elapsed / max(U - 1, 1) / L)
            finals.append(float(per_step[-max(1, U // 5) :].mean()))
            curves.setdefault(name, []).append(per_step)
        rows.append(
            {
                "method": name,
                "final_loss": float(np.mean(finals)),
                "cosine_to_bptt": float(np.mean(cosines)),
                "ms_per_step": float(np.mean(times)),
                "peak_mem_mib": float(np.mean(mems)),
            }
        )
    return rows, curves
