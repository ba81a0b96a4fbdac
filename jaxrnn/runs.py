"""Runs: a validated configuration -> a trained model, its metrics and its files.

What ``jaxrnn train``, ``jaxrnn evaluate`` and ``jaxrnn compare`` do, as functions (the
command line only parses its options, calls these and prints):

- :func:`run_config` ``(task, preset, **options) -> cfg``: the task's defaults
  (:data:`TASK_DEFAULTS`, :data:`COMMON_DEFAULTS`), a published :data:`PRESETS` entry
  and the options, merged and checked (``ValueError`` naming the option).
- :func:`prepare_run` ``(cfg) -> Run``: the data loaded, the model, loss, metrics,
  gradient method and optimiser built; nothing trained, nothing written.
- :func:`train_run` ``(run, out) -> RunResult``: trains with :func:`jaxrnn.train.fit`
  and writes to the folder ``out``: ``checkpoint.msgpack``, ``config.json`` (``config``,
  ``final`` test metrics, ``wall_s``, ``params``), ``metrics.json`` and ``metrics.csv``
  (the evaluations during training) and ``curves.png``. The tasks of
  :mod:`jaxrnn.applications` train with their own ``run_*`` (checkpoint,
  ``config.json``, ``metrics.json``).
- :func:`evaluate_run` ``(run_dir) -> Evaluation``: reloads a run's checkpoint and
  recomputes its test metrics.
- :func:`compare_run`: several gradient methods of :mod:`jaxrnn.grad` on the add task's
  stream (:func:`jaxrnn.train.compare_methods`); :func:`compare_copy_run`: Zucchet et
  al. (2023)'s online-learning comparison on their copy task
  (:func:`jaxrnn.online_copy.compare_online_copy`). Both write ``compare.json`` and
  ``compare.png``.

A configuration is a flat dict: ``task``, ``cell``, ``hidden``, ``layers``,
``bidirectional``, ``readout`` (``None``: ``"all"`` for tagging tasks, else
``"last"``), ``optimizer``, ``lr``, ``clip`` (global-norm clipping, 0: none),
``schedule`` (``"constant"`` or ``"cosine"`` decay over ``steps``), ``steps``,
``batch_size``, ``eval_every``, ``patience`` (early stopping after that many
evaluations without improvement, 0: never), ``method`` (a name of
:data:`jaxrnn.grad.GRADIENT_METHODS`), ``tbptt_k``, ``seed``, ``seq_len``,
``data_dir``, ``text`` and ``preset``.
"""

from __future__ import annotations

import contextlib
import csv
import inspect
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxrnn.applications import APPLICATIONS
from jaxrnn.checkpoint import load_checkpoint, read_metadata
from jaxrnn.checks import check_bool, check_finite, check_nonneg_int, check_positive_int
from jaxrnn.cost import count_params
from jaxrnn.grad import GRADIENT_METHODS, gradient_method
from jaxrnn.models import CELLS, READOUTS, Model, make_cell, make_layer, objective, sequence_model
from jaxrnn.train import (
    OPTIMIZERS,
    EarlyStopping,
    TrainState,
    compare_methods,
    evaluate_batched,
    fit,
    make_optimizer,
    method_grad_fn,
)

__all__ = [
    "COMMON_DEFAULTS",
    "KIND_METRIC",
    "PRESETS",
    "TASK_DEFAULTS",
    "CompareResult",
    "Evaluation",
    "Run",
    "RunResult",
    "build_grad_fn",
    "build_model",
    "check_config",
    "compare_copy_run",
    "compare_run",
    "evaluate_run",
    "load_run_config",
    "load_task",
    "prepare_run",
    "run_config",
    "train_run",
]

# Per-task defaults; the options of run_config override them.
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "mnist1d": dict(cell="gru", hidden=32, lr=1e-2, steps=4000, batch_size=100, eval_every=500),
    "digits": dict(cell="lstm", hidden=64, lr=1e-2, steps=600, batch_size=64, eval_every=100),
    "mnist5k": dict(cell="lstm", hidden=128, lr=2e-3, steps=2000, batch_size=100, eval_every=250),
    "fashion_mnist": dict(
        cell="lstm", hidden=128, layers=2, lr=1e-2, steps=1200, batch_size=100, eval_every=200
    ),
    "mnist_idx": dict(
        cell="lstm", hidden=128, layers=2, lr=1e-2, steps=1200, batch_size=100, eval_every=200
    ),
    "adding": dict(cell="gru", hidden=32, lr=5e-3, steps=2000, batch_size=32, eval_every=250),
    "copy": dict(cell="lstm", hidden=64, lr=2e-3, steps=2000, batch_size=32, eval_every=250),
    "reber": dict(cell="lstm", hidden=32, lr=1e-2, steps=500, batch_size=16, eval_every=100),
    "char_lm": dict(cell="lstm", hidden=128, lr=2e-3, steps=1000, batch_size=32, eval_every=200),
    "next_letter": dict(cell="rnn", hidden=10, lr=3e-2, steps=300, batch_size=7, eval_every=50),
    # jaxrnn.applications (issue 17): their own models and metrics
    "number_words": dict(
        cell="lstm", hidden=64, lr=3e-3, steps=1000, batch_size=64, eval_every=250
    ),
    "digit_strips": dict(
        cell="lstm", hidden=96, layers=2, lr=3e-3, steps=1500, batch_size=32, eval_every=500
    ),
    "digit_captions": dict(
        cell="lstm", hidden=128, lr=3e-3, steps=1000, batch_size=64, eval_every=250
    ),
    "continual_reber": dict(cell="lstm", hidden=8, lr=1e-2, steps=2560, batch_size=16),
}
COMMON_DEFAULTS: dict[str, Any] = dict(
    layers=1,
    bidirectional=False,
    readout=None,
    optimizer="adam",
    clip=1.0,
    schedule="cosine",
    method="bptt",
    tbptt_k=10,
    seed=0,
    seq_len=None,
    patience=0,
)
# The MNIST-1D paper's GRU (Greydanus & Kobak 2020): bidirectional GRU, hidden 6, all
# 40 outputs flattened into a linear layer, Adam 1e-2, batch 100, 6000 steps.
PRESETS: dict[str, dict[str, Any]] = {
    "paper-gru": dict(
        task="mnist1d",
        cell="gru",
        hidden=6,
        layers=1,
        bidirectional=True,
        readout="flatten",
        optimizer="adam",
        lr=1e-2,
        clip=0.0,
        schedule="constant",
        batch_size=100,
        steps=6000,
        eval_every=500,
    ),
}
# The metric early stopping watches, per task kind.
KIND_METRIC = {"classify": "accuracy", "tagging": "accuracy", "regress": "loss"}
SCHEDULES = ("constant", "cosine")
# What run_config accepts, in the order config.json lists them.
OPTIONS = (
    "cell hidden layers bidirectional readout optimizer lr clip schedule steps batch_size "
    "eval_every patience method tbptt_k seed seq_len data_dir text"
).split()
# The options a configuration must have (eval_every may be absent: continual_reber).
REQUIRED = [k for k in OPTIONS if k not in ("eval_every", "data_dir", "text")]
# The file names train_run writes, in the order the command line reports them.
RUN_FILES = ("metrics.json", "metrics.csv", "checkpoint.msgpack", "curves.png", "config.json")

# ------------------------------------------------------------------- configuration


def run_config(task: str | None = None, preset: str | None = None, **options: Any) -> dict:
    """The configuration of a run: defaults, then ``preset``, then ``options``, checked.

    Args:
      task: a key of :data:`TASK_DEFAULTS` (default: the preset's task, else
        ``"mnist1d"``).
      preset: ``None`` or a key of :data:`PRESETS` (a published configuration; its
        task must be ``task`` when both are given).
      options: any of the module docstring's keys; they override the defaults.

    Returns:
      a new dict (``config.json``'s ``config`` entry), checked by :func:`check_config`.

    Raises:
      TypeError: an unknown option.
      ValueError: an unknown task or preset, or an option out of range, naming it.
    """
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise TypeError(f"run_config() got unknown option(s) {unknown}; known: {OPTIONS}")
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}")
    chosen = PRESETS[preset] if preset else {}
    if preset and task is not None and task != chosen["task"]:
        raise ValueError(f"preset {preset} is for task {chosen['task']}, got task {task}")
    task = task or chosen.get("task", "mnist1d")
    if task not in TASK_DEFAULTS:
        raise ValueError(f"task must be one of {sorted(TASK_DEFAULTS)}, got {task!r}")
    cfg = {**COMMON_DEFAULTS, **TASK_DEFAULTS[task], **chosen, "task": task}
    cfg.update({k: options[k] for k in OPTIONS if k in options})
    cfg.update(data_dir=options.get("data_dir"), text=options.get("text"), preset=preset)
    return check_config(cfg)


def _check_choice(name: str, value: Any, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")


def check_config(cfg: Mapping[str, Any]) -> dict:
    """``cfg`` checked: every required option present, each of the right kind and range.

    Returns a copy of ``cfg`` (paths as strings); ``ValueError`` naming the first
    missing or bad option (other keys are kept and not checked).
    """
    missing = [k for k in ("task", *REQUIRED) if k not in cfg]
    if missing:
        raise ValueError(f"no entry {missing[0]!r} (a run configuration needs {REQUIRED})")
    _check_choice("task", cfg["task"], TASK_DEFAULTS)
    _check_choice("cell", cfg["cell"], CELLS)
    _check_choice("optimizer", cfg["optimizer"], OPTIMIZERS)
    _check_choice("schedule", cfg["schedule"], SCHEDULES)
    gradient_method(cfg["method"])
    if cfg["readout"] is not None:
        _check_choice("readout", cfg["readout"], READOUTS)
    for k in ("hidden", "layers", "steps", "batch_size", "tbptt_k"):
        check_positive_int(k, cfg[k])
    for k in ("eval_every", "seq_len"):
        if cfg.get(k) is not None:
            check_positive_int(k, cfg[k])
    check_nonneg_int("seed", cfg["seed"])
    check_nonneg_int("patience", cfg["patience"])
    check_bool("bidirectional", cfg["bidirectional"])
    check_finite("lr", cfg["lr"], positive=True)
    if check_finite("clip", cfg["clip"]) < 0:
        raise ValueError(f"clip must be a non-negative finite number, got {cfg['clip']!r}")
    cfg = dict(cfg)
    for k in ("data_dir", "text"):
        if cfg.get(k) is not None:
            if not isinstance(cfg[k], (str, os.PathLike)):
                raise ValueError(f"{k} must be a path or None, got {cfg[k]!r}")
            cfg[k] = os.fspath(cfg[k])  # config.json holds it as a string
    return cfg


def load_run_config(path: str | os.PathLike) -> dict:
    """The checked ``config`` entry of a run's ``config.json``.

    Raises ``ValueError`` naming the file: missing, not JSON, no ``config`` entry, or a
    configuration :func:`check_config` refuses.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{str(path)!r} (the run's configuration) does not exist")
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))["config"]
    except (ValueError, KeyError, TypeError) as e:
        why = "no 'config' entry" if isinstance(e, (KeyError, TypeError)) else f"not JSON ({e})"
        raise ValueError(f"{str(path)!r} is not a run configuration: {why}") from None
    if not isinstance(cfg, dict):
        raise ValueError(f"{str(path)!r} is not a run configuration: 'config' is not a dict")
    try:
        return check_config(cfg)
    except ValueError as e:
        raise ValueError(f"{str(path)!r} does not describe a run: {e}") from None


# ---------------------------------------------------------------------- building


def load_task(cfg: Mapping[str, Any]):
    """The :class:`jaxrnn.tasks.Dataset` of ``cfg["task"]`` (not an application task).

    Raises ``FileNotFoundError`` naming a missing data directory or text file and
    ``ValueError`` for ``mnist_idx`` without ``data_dir``.
    """
    from jaxrnn import tasks

    name, seed = cfg["task"], cfg["seed"]
    if name == "mnist1d":
        return tasks.mnist1d()
    if name in ("digits", "mnist5k"):
        return tasks.TASKS[name](seed)
    if name == "fashion_mnist":
        return tasks.idx_images(cfg.get("data_dir") or tasks.FASHION_MNIST_DIR)
    if name == "mnist_idx":
        if not cfg.get("data_dir"):
            raise ValueError(
                "data_dir is needed for task mnist_idx (a directory of MNIST idx files)"
            )
        return tasks.idx_images(cfg["data_dir"], name="mnist")
    if name == "adding":
        return tasks.adding(cfg["seq_len"] or 100, seed=seed)
    if name == "copy":
        return tasks.copy_task(cfg["seq_len"] or 100, seed=seed)
    if name == "reber":
        return tasks.embedded_reber(seed=seed)
    if name == "char_lm":
        return tasks.char_lm(cfg.get("text"), seq_len=cfg["seq_len"] or 100)
    if name == "next_letter":
        return tasks.next_letter()
    raise ValueError(f"task {name!r} has no dataset here (an application task?)")


def build_model(
    cfg: Mapping[str, Any], meta: Mapping[str, Any]
) -> tuple[Model, Callable, Callable]:
    """``(model, loss_fn, metric_fn)`` for ``cfg`` on a task with metadata ``meta``
    (``kind``, ``input_size``, ``output_size``, ``seq_len``, ``name``, ``one_hot``):
    ``layers`` layers of ``cell`` (bidirectional or not) and a linear readout
    (:func:`jaxrnn.models.sequence_model`, :func:`jaxrnn.models.objective`)."""
    kind = meta["kind"]
    readout = cfg["readout"] or ("all" if kind == "tagging" else "last")
    if (readout == "all") != (kind == "tagging"):
        raise ValueError(f"readout {readout} does not fit task {meta['name']} ({kind})")
    layer = make_layer(
        cfg["cell"],
        meta["input_size"],
        cfg["hidden"],
        num_layers=cfg["layers"],
        bidirectional=bool(cfg["bidirectional"]),
    )
    model = sequence_model(layer, meta["output_size"], readout=readout, seq_len=meta["seq_len"])
    loss_fn, metric_fn = objective(model, kind, one_hot=meta.get("one_hot"))
    return model, loss_fn, metric_fn


def build_grad_fn(cfg: Mapping[str, Any], model: Model, meta: Mapping[str, Any]):
    """``fit``'s ``grad_fn`` for ``cfg["method"]`` (:func:`jaxrnn.train.method_grad_fn`),
    or ``None`` for ``"bptt"`` (``fit`` differentiates the loss itself). A method other
    than BPTT needs one unidirectional layer read out ``"last"`` or ``"all"``."""
    name = cfg["method"]
    gradient_method(name)
    if name == "bptt":
        return None
    if cfg["layers"] != 1 or cfg["bidirectional"] or model.readout not in ("all", "last"):
        raise ValueError(
            f"method {name} needs one unidirectional layer and readout 'last' or 'all'"
        )
    cell = make_cell(cfg["cell"], meta["input_size"], cfg["hidden"])
    return method_grad_fn(
        model, cell, name, kind=meta["kind"], one_hot=meta.get("one_hot"), k=cfg["tbptt_k"]
    )


def _optimizer(cfg: Mapping[str, Any]) -> optax.GradientTransformation:
    return make_optimizer(
        cfg["optimizer"],
        cfg["lr"],
        clip_norm=cfg["clip"] or None,
        decay_steps=cfg["steps"] if cfg["schedule"] == "cosine" and cfg["steps"] else None,
    )


def _application_options(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The options of ``cfg`` that the application's ``run_*`` takes."""
    accepted = inspect.signature(APPLICATIONS[cfg["task"]]).parameters
    keys = "seed hidden steps lr batch_size cell eval_every layers".split()
    return {k: cfg[k] for k in keys if k in accepted and cfg.get(k) is not None}


class Run(NamedTuple):
    """A prepared run (:func:`prepare_run`): nothing trained, nothing written yet.

    For an application task (:data:`jaxrnn.applications.APPLICATIONS`) only ``cfg`` is
    set: its ``run_*`` builds its own data and model.
    """

    cfg: dict
    data: Any = None  # jaxrnn.tasks.Dataset
    model: Model | None = None
    loss_fn: Callable | None = None
    metric_fn: Callable | None = None
    grad_fn: Callable | None = None  # None: BPTT by jax.grad of loss_fn
    optimizer: optax.GradientTransformation | None = None
    num_params: int | None = None

    def describe(self) -> str:
        """``key=value`` pairs saying what will be trained (``jaxrnn train``'s first line)."""
        cfg = self.cfg
        if self.model is None:
            kw = _application_options(cfg)
            return f"task={cfg['task']} " + " ".join(f"{k}={v}" for k, v in kw.items())
        return (
            f"task={cfg['task']} cell={cfg['cell']} hidden={cfg['hidden']} "
            f"layers={cfg['layers']} bidirectional={bool(cfg['bidirectional'])} "
            f"readout={self.model.readout} params={self.num_params} steps={cfg['steps']} "
            f"lr={cfg['lr']} method={cfg['method']}"
        )


def prepare_run(cfg: Mapping[str, Any]) -> Run:
    """Check ``cfg``, load its task and build the model, gradient and optimiser.

    Every error of the configuration or the data (``ValueError`` naming the option,
    ``FileNotFoundError`` naming the file) is raised here, before anything is trained
    or written.
    """
    cfg = check_config(cfg)
    if cfg["task"] in APPLICATIONS:
        return Run(cfg)
    data = load_task(cfg)
    model, loss_fn, metric_fn = build_model(cfg, data.meta)
    grad_fn = build_grad_fn(cfg, model, data.meta)
    return Run(cfg, data, model, loss_fn, metric_fn, grad_fn, _optimizer(cfg), count_params(model))


# ---------------------------------------------------------------------- training


class RunResult(NamedTuple):
    """What :func:`train_run` gives: the trained ``params``, the evaluations during
    training (``history``), the ``final`` test metrics (floats), the training wall time
    ``wall_s``, ``num_params``, the folder ``out`` and the names of the ``files`` written
    there. ``report``: an application's own lines to print; ``samples``: the model's
    output on the task's demo prompts (``next_letter``: ``c.next= d``; ``char_lm``: a
    sampled text)."""

    cfg: dict
    params: Any
    history: list[dict]
    final: dict[str, float]
    wall_s: float
    num_params: int
    out: Path
    files: list[str]
    report: tuple[str, ...] = ()
    samples: tuple[str, ...] = ()


def _save_summary(out: Path, cfg, final, wall_s, num_params, history) -> None:
    summary = {"config": cfg, "final": final, "wall_s": wall_s, "params": num_params}
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(summary, indent=1))
    (out / "metrics.json").write_text(json.dumps(history, indent=1))


def train_run(
    run: Run | Mapping[str, Any],
    out: str | os.PathLike,
    *,
    resume: bool = False,
    progress: bool = True,
) -> RunResult:
    """Train a run (a :class:`Run` or a configuration for :func:`prepare_run`) and
    write its files to the folder ``out`` (created if needed; see the module docstring).

    ``resume``: continue from ``out``'s checkpoint (bit for bit, :func:`jaxrnn.train.fit`);
    ``progress``: a progress bar. The final metrics are the test set's, prefixed
    ``test_``, computed on the trained parameters.
    """
    if not isinstance(run, Run):
        run = prepare_run(run)
    cfg, out = run.cfg, Path(out)
    checkpoint = out / "checkpoint.msgpack"
    if run.model is None:  # the runner checks its options: out is made when first written
        r = APPLICATIONS[cfg["task"]](
            **_application_options(cfg), progress=progress, checkpoint_path=checkpoint
        )
        _save_summary(out, cfg, r["metrics"], r["wall_s"], r["num_params"], r["history"])
        files = [n for n in RUN_FILES if (out / n).is_file()]
        return RunResult(
            cfg, r["params"], r["history"], r["metrics"], r["wall_s"], r["num_params"], out,
            files, tuple(r["report"]),
        )  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    data, model = run.data, run.model
    key_init, key_train = jax.random.split(jax.random.key(cfg["seed"]))

    def eval_fn(p):
        return {
            f"test_{k}": v for k, v in evaluate_batched(run.metric_fn, p, data.test, 500).items()
        }

    early = None
    if cfg["patience"]:
        metric = KIND_METRIC[data.meta["kind"]]
        early = EarlyStopping(
            f"test_{metric}", "min" if metric == "loss" else "max", cfg["patience"]
        )
    t0 = time.perf_counter()
    result = fit(
        run.loss_fn,
        model.init(key_init),
        data.train,
        steps=cfg["steps"],
        key=key_train,
        optimizer=run.optimizer,
        batch_size=min(cfg["batch_size"], len(data.train["y"])),
        data_seed=cfg["seed"],
        eval_fn=eval_fn,
        eval_every=cfg["eval_every"],
        early_stopping=early,
        checkpoint_path=checkpoint,
        checkpoint_every=cfg["eval_every"],
        resume=resume,
        grad_fn=run.grad_fn,
        progress=progress,
        desc=f"{cfg['task']}/{cfg['cell']}",
    )
    wall = time.perf_counter() - t0
    final = {k: float(v) for k, v in eval_fn(result.params).items()}
    _save_summary(out, cfg, final, wall, run.num_params, result.history)
    _write_history(out, result.history, f"{cfg['task']} {cfg['cell']}-{cfg['hidden']}")
    samples = _samples(data.meta, model, result.params, cfg["seed"])
    files = [n for n in RUN_FILES if (out / n).is_file()]
    return RunResult(
        cfg, result.params, result.history, final, wall, run.num_params, out, files, (), samples
    )


@contextlib.contextmanager
def _figure(path: Path, *args, **kwargs) -> Iterator[Any]:
    """``matplotlib`` (Agg) ``plt.subplots(*args, **kwargs)``, saved to ``path`` at exit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(*args, **kwargs)
    try:
        yield fig, axes
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)


def _write_history(out: Path, history: list[dict], title: str) -> None:
    """``metrics.csv`` (one row per evaluation) and ``curves.png`` (losses, metrics)."""
    if history:
        keys = list(dict.fromkeys(k for h in history for k in h))
        with open(out / "metrics.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(history)
    with _figure(out / "curves.png", 1, 2, figsize=(10, 4)) as (fig, axes):
        steps = [h["step"] for h in history]
        axes[0].plot(steps, [h["train_loss"] for h in history], label="train loss")
        if history and "test_loss" in history[0]:
            axes[0].plot(steps, [h["test_loss"] for h in history], label="test loss")
        axes[0].set_xlabel("step")
        axes[0].set_yscale("log")
        axes[0].legend()
        for k in ("test_accuracy", "test_within_tol", "test_strings_correct", "test_bpc"):
            if history and k in history[0]:
                axes[1].plot(steps, [h[k] for h in history], label=k)
        axes[1].set_xlabel("step")
        axes[1].legend()
        fig.suptitle(title)


def _samples(meta: Mapping[str, Any], model: Model, params, seed: int) -> tuple[str, ...]:
    """The task's demo: ``next_letter``'s ``c.next=``/``fg.next=``, a char-LM sample."""
    lines: list[str] = []
    if meta["name"] == "next_letter":
        from jaxrnn.tasks.next_letter import decode, encode

        for prompt in ("c", "fg"):
            z = model.apply(params, jnp.asarray(encode(prompt)))
            lines.append(f"{prompt}.next= {decode(jnp.argmax(z[-1]))}")
    elif meta["name"] == "char_lm" and model.readout == "all":
        from jaxrnn.models import generate
        from jaxrnn.tasks.char_lm import decode, encode

        vocab, V = meta["vocab"], meta["one_hot"]
        prompt = "The " if all(c in vocab for c in "The ") else vocab[0]
        x = jax.nn.one_hot(encode(prompt, vocab), V, dtype=jnp.float32)
        toks = generate(
            model,
            params,
            x,
            200,
            jax.random.key(seed),
            embed=lambda t: jax.nn.one_hot(t, V, dtype=jnp.float32),
            temperature=0.8,
        )
        lines.append(f"sample: {prompt + decode(toks, vocab)!r}")
    return tuple(lines)


# -------------------------------------------------------------------- evaluation


class Evaluation(NamedTuple):
    """What :func:`evaluate_run` gives: the ``checkpoint`` read, its training ``step``,
    the run's ``cfg``, the task's ``meta`` and the recomputed test ``metrics``
    (``test_``-prefixed)."""

    checkpoint: Path
    step: int
    cfg: dict
    meta: dict
    metrics: dict


def evaluate_run(run_dir: str | os.PathLike, *, data_dir: str | None = None) -> Evaluation:
    """Reload a run's checkpoint and recompute its test metrics.

    ``run_dir``: a folder written by :func:`train_run` or its ``checkpoint.msgpack``
    (the ``config.json`` beside it says what to build); ``data_dir`` overrides the
    run's data directory. Raises ``ValueError`` naming the file (missing checkpoint or
    configuration, a configuration that does not describe a run, an application task's
    run) and :class:`~jaxrnn.checkpoint.CheckpointError` (a ``ValueError``) for a
    damaged checkpoint or one that does not fit the model.
    """
    path = Path(run_dir)
    if path.is_dir():
        path = path / "checkpoint.msgpack"
    cfg_path = path.parent / "config.json"
    if not path.exists():
        raise ValueError(f"checkpoint {str(path)!r} does not exist")
    read_metadata(path)  # verify the file before building anything
    cfg = load_run_config(cfg_path)
    if cfg["task"] in APPLICATIONS:
        raise ValueError(f"evaluate does not reload {cfg['task']} runs; see {cfg_path}")
    if data_dir:
        cfg["data_dir"] = data_dir
    data = load_task(cfg)
    try:
        model, _, metric_fn = build_model(cfg, data.meta)
    except ValueError as e:
        raise ValueError(f"{str(cfg_path)!r} does not describe a run: {e}") from None
    params = model.init(jax.random.key(0))
    template = TrainState(
        params, _optimizer(cfg).init(params), jnp.asarray(0, "int32"), jax.random.key(0)
    )
    state, _ = load_checkpoint(path, template)
    metrics = evaluate_batched(metric_fn, state.params, data.test, 500)
    metrics = {f"test_{k}": v for k, v in metrics.items()}
    return Evaluation(path, int(state.step), cfg, data.meta, metrics)


# -------------------------------------------------------------------- comparison


class CompareResult(NamedTuple):
    """What :func:`compare_run` gives: per method a row (``final_loss``,
    ``cosine_to_bptt``, ``ms_per_step``, ``peak_mem_mib``), each seed's per-step loss
    curve, the arguments run with (defaults filled in, methods and seeds as lists) and
    the files written to ``out``."""

    rows: list[dict]
    curves: dict[str, list[np.ndarray]]
    args: dict[str, Any]
    files: tuple[str, ...]


def _check_seeds(seeds: Sequence[int]) -> list[int]:
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds must be non-negative integers, got none")
    return [check_nonneg_int("seeds", s) for s in seeds]


def _out_folder(out: str | os.PathLike | None) -> Path | None:
    if out is None:
        return None
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def compare_run(
    *,
    cell: str = "rnn",
    hidden: int = 16,
    methods: Sequence[str] | None = None,
    updates: int = 300,
    chunk: int = 50,
    tbptt_k: int = 5,
    lr: float = 3e-3,
    seeds: Sequence[int] = (0,),
    out: str | os.PathLike | None = None,
    progress: bool = False,
    record: Mapping[str, Any] | None = None,
) -> CompareResult:
    """Train ``cell``-``hidden`` (input 1) and a linear softmax readout on the add task's
    stream (lags 3 and 8, :func:`jaxrnn.tasks.add_task_stream`) with each gradient
    method: ``updates`` chunks of ``chunk`` steps per seed, one Adam(``lr``) update per
    chunk after global-norm clipping at 1 (:func:`jaxrnn.train.compare_methods`).

    ``methods``: names of :data:`jaxrnn.grad.GRADIENT_METHODS` (default: every one
    that applies to the cell, in the registry's order); ``tbptt_k``: TBPTT's window.
    With ``out``, writes ``compare.json`` (``args``: ``record`` and these arguments;
    ``rows``) and ``compare.png`` (per-step cross-entropy, smoothed, and the task's
    floors). ``ValueError`` naming a bad argument, before anything runs.
    """
    from jaxrnn.models import linear
    from jaxrnn.tasks import ADD_TASK_FLOORS, add_task_stream

    H, L = check_positive_int("hidden", hidden), check_positive_int("chunk", chunk)
    updates = check_positive_int("updates", updates)
    check_positive_int("tbptt_k", tbptt_k)
    check_finite("lr", lr, positive=True)
    rnn = make_cell(cell, 1, H)
    if methods is None:  # the registry's methods, in its order, that apply to this cell
        methods = [n for n, m in GRADIENT_METHODS.items() if rnn.diagonal or not m.element_wise]
    methods = list(methods)
    unknown = [m for m in methods if m not in GRADIENT_METHODS]
    if unknown or not methods:
        raise ValueError(f"unknown method(s) {unknown}; known: {sorted(GRADIENT_METHODS)}")
    dense = [m for m in methods if GRADIENT_METHODS[m].element_wise and not rnn.diagonal]
    if dense:
        raise ValueError(f"methods {dense} need an element-wise cell; cell {cell} is dense")
    seeds = _check_seeds(seeds)
    head_init, head_apply = linear(H, 2)

    def step_loss(head_params, y, target):
        return optax.softmax_cross_entropy(head_apply(head_params, y), target)

    def init(seed):
        kc, kh = jax.random.split(jax.random.key(seed))
        return rnn.init(kc), head_init(kh)

    streams = {}
    for seed in seeds:
        x, y = add_task_stream(updates * L, seed)
        streams[seed] = (x.reshape(updates, L, 1), y.reshape(updates, L, 2))
    out = _out_folder(out)
    rows, curves = compare_methods(
        rnn,
        step_loss,
        init,
        streams,
        methods,
        optimizer=optax.chain(optax.clip_by_global_norm(1.0), optax.adam(lr)),
        options={"k": tbptt_k},
        progress=progress,
    )
    args = dict(cell=cell, hidden=H, methods=methods, updates=updates, chunk=L,
                tbptt_k=tbptt_k, lr=lr, seeds=seeds)  # fmt: skip
    if out is None:
        return CompareResult(rows, curves, args, ())
    record = {"args": {**(record or {}), **args}, "rows": rows}
    (out / "compare.json").write_text(json.dumps(record, indent=1))
    with _figure(out / "compare.png", figsize=(7, 4)) as (_, ax):
        w = max(1, updates // 20)
        for name, cs in curves.items():
            c = np.mean(cs, axis=0)
            ax.plot(np.convolve(c, np.ones(w) / w, mode="valid"), label=name)
        for k, v in ADD_TASK_FLOORS.items():
            ax.axhline(v, ls=":", c="gray")
            ax.text(0, v, k, fontsize=7, va="bottom")
        ax.set_xlabel(f"update ({L} steps each)")
        ax.set_ylabel("cross-entropy per step")
        ax.legend()
    return CompareResult(rows, curves, args, ("compare.json", "compare.png"))


def compare_copy_run(
    *,
    methods: Sequence[str] | None = None,
    hidden: int = 32,
    layers: int = 1,
    updates: int = 1500,
    lr: float = 3e-3,
    seeds: Sequence[int] = (0, 1, 2),
    out: str | os.PathLike | None = None,
    progress: bool = False,
    record: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Zucchet et al. (2023)'s comparison on their copy task
    (:func:`jaxrnn.online_copy.compare_online_copy`: ``layers`` LRU layers of ``hidden``
    units, BPTT, their online rule, 1-step truncation and spatial backpropagation).

    Returns ``compare_online_copy``'s dict (``rows``, ``curves``, ``eval_at``) with
    ``args`` (``record`` and these arguments); with ``out``, writes it as
    ``compare.json`` and the held-out loss curves as ``compare.png``.
    """
    from tqdm.auto import tqdm

    from jaxrnn.online_copy import COPY_METHODS, check_copy_methods, compare_online_copy

    methods = check_copy_methods(COPY_METHODS if methods is None else methods)
    seeds = _check_seeds(seeds)
    hidden, layers = check_positive_int("hidden", hidden), check_positive_int("layers", layers)
    updates = check_positive_int("updates", updates)
    check_finite("lr", lr, positive=True)
    out = _out_folder(out)
    bar = tqdm(total=len(methods) * len(seeds) * (updates - 1), disable=not progress)
    result = compare_online_copy(
        methods, hidden=hidden, layers=layers, updates=updates, lr=lr, seeds=seeds,
        progress=lambda *_: bar.update(),
    )  # fmt: skip
    bar.close()
    args = dict(methods=methods, hidden=hidden, layers=layers, updates=updates, lr=lr, seeds=seeds)
    result["args"] = {**(record or {}), **args}
    if out is None:
        return result
    (out / "compare.json").write_text(json.dumps(result, indent=1))
    with _figure(out / "compare.png", figsize=(7, 4)) as (_, ax):
        for name, c in result["curves"].items():
            ax.plot(result["eval_at"], np.mean(c, axis=1), "-o", label=name)
        ax.axhline(np.log(2), ls=":", c="gray")
        ax.text(result["eval_at"][0], np.log(2), "ln 2 (no memory)", fontsize=7, va="bottom")
        ax.set_xlabel("update")
        ax.set_ylabel("held-out BCE per bit")
        ax.legend()
    return result
