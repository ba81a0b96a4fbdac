"""The ``jaxrnn`` command line: ``train``, ``evaluate`` and ``compare``.

``jaxrnn train`` with no arguments trains a GRU-32 on MNIST-1D (about a minute on two
CPU cores) and prints its test accuracy next to the paper's table. Every run writes
``metrics.json``, ``metrics.csv``, ``checkpoint.msgpack`` and ``curves.png`` to
``--out`` (default ``runs/<task>-<cell>-<time>``). ``jaxrnn evaluate RUN`` reloads a
checkpoint and recomputes the test metrics. ``jaxrnn compare`` trains the same cell
with several gradient methods on the add task (lags 3 and 8) and prints final loss,
gradient cosine to BPTT, time per step and peak memory; ``jaxrnn compare --preset
zucchet-copy`` runs the online-learning comparison of Zucchet et al. 2023 on their copy
task (:mod:`jaxrnn.online_copy`).

Bad input exits with status 2 and one line ``jaxrnn: error: ...``.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["PRESETS", "TASK_DEFAULTS", "main"]

# Per-task defaults; command-line options override them.
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
COMMON_DEFAULTS = dict(
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
KIND_METRIC = {"classify": "accuracy", "tagging": "accuracy", "regress": "loss"}


class CLIError(Exception):
    """Bad command-line input: reported as one line, exit status 2."""


# ---------------------------------------------------------------------------- parsing


def _int_at_least(lo: int, what: str) -> Callable[[str], int]:
    """An argparse ``type`` accepting integers ``>= lo``."""

    def parse(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            v = lo - 1
        if v < lo:
            raise argparse.ArgumentTypeError(f"expected a {what} integer, got {s!r}")
        return v

    return parse


_positive_int = _int_at_least(1, "positive")
_nonneg_int = _int_at_least(0, "non-negative")


def _float_above(lo: float, strict: bool, what: str) -> Callable[[str], float]:
    """An argparse ``type`` accepting finite numbers ``> lo`` (``>= lo`` if not strict)."""

    def parse(s: str) -> float:
        try:
            v = float(s)
        except ValueError:
            v = math.nan
        if not (math.isfinite(v) and (v > lo if strict else v >= lo)):
            raise argparse.ArgumentTypeError(f"expected a {what} number, got {s!r}")
        return v

    return parse


_positive_float = _float_above(0.0, True, "positive")
_nonneg_float = _float_above(0.0, False, "non-negative finite")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump
        raise CLIError(message)


def build_parser() -> argparse.ArgumentParser:
    from jaxrnn.models import CELLS, READOUTS
    from jaxrnn.train import OPTIMIZERS

    p = _Parser(prog="jaxrnn", description="Recurrent networks in JAX: train, evaluate, compare.")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)

    t = sub.add_parser("train", help="train a model on an offline task")
    t.add_argument("--task", choices=sorted(TASK_DEFAULTS), default=None, help="default mnist1d")
    t.add_argument("--preset", choices=sorted(PRESETS), help="a published configuration")
    t.add_argument("--cell", choices=sorted(CELLS))
    t.add_argument("--hidden", type=_positive_int, help="hidden size")
    t.add_argument("--layers", type=_positive_int, help="stacked layers")
    t.add_argument("--bidirectional", action="store_true", default=None)
    t.add_argument("--readout", choices=READOUTS, help="many-to-one readout")
    t.add_argument("--optimizer", choices=sorted(OPTIMIZERS))
    t.add_argument("--lr", type=_positive_float, help="learning rate")
    t.add_argument("--clip", type=_nonneg_float, help="global-norm clip (0: none)")
    t.add_argument("--schedule", choices=("constant", "cosine"))
    t.add_argument("--steps", type=_positive_int, help="optimizer steps")
    t.add_argument("--batch-size", type=_positive_int)
    t.add_argument("--eval-every", type=_positive_int)
    t.add_argument("--patience", type=_nonneg_int, help="early stopping (evaluations)")
    t.add_argument("--method", help="gradient method: bptt (default), tbptt, rtrl, ...")
    t.add_argument("--tbptt-k", type=_positive_int, help="truncation length for tbptt")
    t.add_argument("--seed", type=_nonneg_int)
    t.add_argument("--seq-len", type=_positive_int, help="T for adding/copy/char_lm")
    t.add_argument("--data-dir", help="directory of idx files (fashion_mnist, mnist_idx)")
    t.add_argument("--text", help="text file for char_lm (default: pydoc_data)")
    t.add_argument("--out", help="output directory")
    t.add_argument("--resume", action="store_true", help="continue from --out's checkpoint")
    t.add_argument("--no-progress", action="store_true")

    e = sub.add_parser("evaluate", help="reload a checkpoint and report test metrics")
    e.add_argument("run", help="a run directory or its checkpoint.msgpack")
    e.add_argument("--data-dir", help="override the data directory")

    c = sub.add_parser(
        "compare", help="compare gradient methods on the add task (or --preset zucchet-copy)"
    )
    c.add_argument(
        "--preset",
        choices=["zucchet-copy"],
        help="zucchet-copy: Zucchet et al. 2023's copy task with an LRU (bptt, online, "
        "truncated, spatial; --hidden 32 --updates 1500 --seeds 0,1,2 unless given)",
    )
    c.add_argument("--methods", default=None, help="default: every registered method")
    c.add_argument("--cell", choices=sorted(CELLS), default="rnn")
    c.add_argument("--hidden", type=_positive_int, default=None, help="default 16")
    c.add_argument("--layers", type=_positive_int, default=1, help="zucchet-copy: LRU layers")
    c.add_argument("--updates", type=_positive_int, default=None, help="default 300")
    c.add_argument("--chunk", type=_positive_int, default=50, help="time steps per update")
    c.add_argument("--tbptt-k", type=_positive_int, default=5)
    c.add_argument("--lr", type=_positive_float, default=3e-3)
    c.add_argument("--seeds", default=None, help="default 0")
    c.add_argument("--out", help="output directory")
    c.add_argument("--no-progress", action="store_true")
    return p


# ------------------------------------------------------------------------------ train


def _config(args: argparse.Namespace) -> dict[str, Any]:
    preset = PRESETS[args.preset] if args.preset else {}
    task = args.task or preset.get("task", "mnist1d")
    if args.preset and args.task and args.task != preset.get("task"):
        raise CLIError(f"--preset {args.preset} is for task {preset['task']}, got --task {task}")
    cfg = {**COMMON_DEFAULTS, **TASK_DEFAULTS[task], **preset, "task": task}
    for k in (
        "cell hidden layers bidirectional readout optimizer lr clip schedule steps "
        "batch_size eval_every patience method tbptt_k seed seq_len"
    ).split():
        v = getattr(args, k, None)
        if v is not None:
            cfg[k] = v
    cfg["data_dir"] = args.data_dir
    cfg["text"] = args.text
    cfg["preset"] = args.preset
    return cfg


def _out_dir(path: str | None, default: str) -> Path:
    """``--out`` as a directory that exists (created if needed); one-line errors."""
    out = Path(path or default)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {str(out)!r} is a file, not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CLIError(f"--out {str(out)!r} cannot be created: {e.strerror or e}") from None
    return out


def _wrote(out: Path, names: list[str]) -> str:
    """The files of ``names`` that exist in ``out``, as the final report says them."""
    there = [n for n in names if (out / n).is_file()]
    return f"wrote {out}/\n  " + (", ".join(there) if there else "(nothing)")


def _load_task(cfg: dict[str, Any]):
    from jaxrnn import tasks

    name, seed = cfg["task"], cfg["seed"]
    try:
        if name == "mnist1d":
            return tasks.mnist1d()
        if name in ("digits", "mnist5k"):
            return tasks.TASKS[name](seed)
        if name == "fashion_mnist":
            return tasks.idx_images(cfg["data_dir"] or tasks.FASHION_MNIST_DIR)
        if name == "mnist_idx":
            if not cfg["data_dir"]:
                raise CLIError("task mnist_idx needs --data-dir (a directory of MNIST idx files)")
            return tasks.idx_images(cfg["data_dir"], name="mnist")
        if name == "adding":
            return tasks.adding(cfg["seq_len"] or 100, seed=seed)
        if name == "copy":
            return tasks.copy_task(cfg["seq_len"] or 100, seed=seed)
        if name == "reber":
            return tasks.embedded_reber(seed=seed)
        if name == "char_lm":
            return tasks.char_lm(cfg["text"], seq_len=cfg["seq_len"] or 100)
        return tasks.next_letter()
    except FileNotFoundError as e:
        raise CLIError(str(e).strip("'\"")) from None


def _build(cfg: dict[str, Any], meta: dict[str, Any]):
    from jaxrnn.models import make_layer, objective, sequence_model

    kind = meta["kind"]
    readout = cfg["readout"] or ("all" if kind == "tagging" else "last")
    if (readout == "all") != (kind == "tagging"):
        raise CLIError(f"--readout {readout} does not fit task {meta['name']} ({kind})")
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


def _method_grad(cfg, model, meta):
    """``fit``'s ``grad_fn`` for ``--method`` (:func:`jaxrnn.train.method_grad_fn`)."""
    from jaxrnn.grad import GRADIENT_METHODS
    from jaxrnn.models import make_cell
    from jaxrnn.train import method_grad_fn

    name = cfg["method"]
    if name not in GRADIENT_METHODS:
        raise CLIError(f"--method must be one of {sorted(GRADIENT_METHODS)}, got {name!r}")
    if cfg["layers"] != 1 or cfg["bidirectional"] or model.readout not in ("all", "last"):
        raise CLIError(
            f"--method {name} needs one unidirectional layer and readout 'last' or 'all'"
        )
    cell = make_cell(cfg["cell"], meta["input_size"], cfg["hidden"])
    return method_grad_fn(
        model, cell, name, kind=meta["kind"], one_hot=meta.get("one_hot"), k=cfg["tbptt_k"]
    )


def _optimizer(cfg: dict[str, Any]):
    from jaxrnn.train import make_optimizer

    return make_optimizer(
        cfg["optimizer"],
        cfg["lr"],
        clip_norm=cfg["clip"] or None,
        decay_steps=cfg["steps"] if cfg["schedule"] == "cosine" and cfg["steps"] else None,
    )


def _write_outputs(out: Path, history: list[dict], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (out / "metrics.json").write_text(json.dumps(history, indent=1))
    if history:
        keys = list(dict.fromkeys(k for h in history for k in h))
        with open(out / "metrics.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(history)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
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
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=100)
    plt.close(fig)


def _report(meta: dict, cfg: dict, final: dict) -> str:
    lines = []
    name = meta["name"]
    if name == "mnist1d":
        from jaxrnn.tasks import PAPER_ACCURACY

        ours = 100 * final["test_accuracy"]
        desc = f"{'bi' if cfg['bidirectional'] else ''}{cfg['cell'].upper()}-{cfg['hidden']}"
        lines.append("MNIST-1D test accuracy (%), Greydanus & Kobak 2020 table vs this run:")
        for k, v in PAPER_ACCURACY.items():
            lines.append(f"  {k:<22} {v:5.1f}   (paper)")
        lines.append(f"  {desc + ' (jaxrnn)':<22} {ours:5.1f}   (this run, {cfg['steps']} steps)")
    else:
        shown = {k: round(v, 4) for k, v in final.items() if k.startswith("test_")}
        lines.append(f"{name} test metrics: {shown}")
        for k in ("baseline_mse", "baseline_ce", "uniform_bpc", "unigram_bpc"):
            if k in meta:
                lines.append(f"  {k}: {meta[k]:.4f}")
        if meta.get("published"):
            lines.append(f"  published: {meta['published']}")
    return "\n".join(lines)


def _demo(meta: dict, model, params, seed: int) -> None:
    """Task-specific output: the seed's ``c.next=``/``fg.next=``, or a char-LM sample."""
    import jax
    import jax.numpy as jnp

    if meta["name"] == "next_letter":
        from jaxrnn.tasks.next_letter import decode, encode

        for prompt in ("c", "fg"):
            z = model.apply(params, jnp.asarray(encode(prompt)))
            print(f"{prompt}.next= {decode(jnp.argmax(z[-1]))}")
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
        print(f"sample: {prompt + decode(toks, vocab)!r}")


def _train_application(cfg: dict[str, Any], args: argparse.Namespace) -> int:
    """Tasks of :mod:`jaxrnn.applications`: their ``run_*`` trains and evaluates."""
    import inspect

    from jaxrnn.applications import APPLICATIONS

    run = APPLICATIONS[cfg["task"]]
    accepted = inspect.signature(run).parameters
    kw = {
        k: cfg[k]
        for k in ("seed hidden steps lr batch_size cell eval_every layers".split())
        if k in accepted and cfg.get(k) is not None
    }
    out = _out_dir(args.out, f"runs/{cfg['task']}-{cfg['cell']}-{time.strftime('%Y%m%d-%H%M%S')}")
    print(f"jaxrnn train: task={cfg['task']} " + " ".join(f"{k}={v}" for k, v in kw.items()))
    result = run(**kw, progress=not args.no_progress, checkpoint_path=out / "checkpoint.msgpack")
    summary = {
        "config": cfg,
        "final": result["metrics"],
        "wall_s": result["wall_s"],
        "params": result["num_params"],
    }
    (out / "config.json").write_text(json.dumps(summary, indent=1))
    (out / "metrics.json").write_text(json.dumps(result["history"], indent=1))
    print("\n".join(result["report"]))
    print(f"wall time {result['wall_s']:.1f} s; wrote {out}/")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    import jax

    from jaxrnn.applications import APPLICATIONS
    from jaxrnn.train import EarlyStopping, evaluate_batched, fit

    cfg = _config(args)
    if cfg["task"] in APPLICATIONS:
        return _train_application(cfg, args)
    data = _load_task(cfg)
    meta = data.meta
    model, loss_fn, metric_fn = _build(cfg, meta)
    grad_fn = None if cfg["method"] == "bptt" else _method_grad(cfg, model, meta)
    out = _out_dir(args.out, f"runs/{cfg['task']}-{cfg['cell']}-{time.strftime('%Y%m%d-%H%M%S')}")
    optimizer = _optimizer(cfg)
    key_init, key_train = jax.random.split(jax.random.key(cfg["seed"]))
    params = model.init(key_init)
    n_params = sum(x.size for x in jax.tree_util.tree_leaves(params))

    def eval_fn(p):
        return {f"test_{k}": v for k, v in evaluate_batched(metric_fn, p, data.test, 500).items()}

    metric = KIND_METRIC[meta["kind"]]
    early = None
    if cfg["patience"]:
        mode = "min" if metric == "loss" else "max"
        early = EarlyStopping(f"test_{metric}", mode, cfg["patience"])
    print(
        f"jaxrnn train: task={cfg['task']} cell={cfg['cell']} hidden={cfg['hidden']} "
        f"layers={cfg['layers']} bidirectional={bool(cfg['bidirectional'])} "
        f"readout={model.readout} params={n_params} steps={cfg['steps']} "
        f"lr={cfg['lr']} method={cfg['method']} out={out}"
    )
    t0 = time.perf_counter()
    result = fit(
        loss_fn,
        params,
        data.train,
        steps=cfg["steps"],
        key=key_train,
        optimizer=optimizer,
        batch_size=min(cfg["batch_size"], len(data.train["y"])),
        data_seed=cfg["seed"],
        eval_fn=eval_fn,
        eval_every=cfg["eval_every"],
        early_stopping=early,
        checkpoint_path=out / "checkpoint.msgpack",
        checkpoint_every=cfg["eval_every"],
        resume=args.resume,
        grad_fn=grad_fn,
        progress=not args.no_progress,
        desc=f"{cfg['task']}/{cfg['cell']}",
    )
    wall = time.perf_counter() - t0
    final = eval_fn(result.params)
    final = {k: float(v) for k, v in final.items()}
    summary = {"config": cfg, "final": final, "wall_s": wall, "params": n_params}
    (out / "config.json").write_text(json.dumps(summary, indent=1))
    _write_outputs(out, result.history, f"{cfg['task']} {cfg['cell']}-{cfg['hidden']}")
    print(_report(meta, cfg, final))
    _demo(meta, model, result.params, cfg["seed"])
    names = ["metrics.json", "metrics.csv", "checkpoint.msgpack", "curves.png", "config.json"]
    print(f"wall time {wall:.1f} s; {_wrote(out, names)}")
    return 0


# --------------------------------------------------------------------------- evaluate


def cmd_evaluate(args: argparse.Namespace) -> int:
    import jax

    from jaxrnn.checkpoint import CheckpointError, load_checkpoint, read_metadata
    from jaxrnn.train import TrainState, evaluate_batched

    path = Path(args.run)
    if path.is_dir():
        path = path / "checkpoint.msgpack"
    cfg_path = path.parent / "config.json"
    if not path.exists():
        raise CLIError(f"checkpoint {str(path)!r} does not exist")
    try:
        read_metadata(path)  # verify the file before building anything
    except CheckpointError as e:
        raise CLIError(str(e)) from None
    cfg = _run_config(cfg_path)
    if cfg.get("task") in ("number_words", "digit_strips", "digit_captions", "continual_reber"):
        raise CLIError(f"evaluate does not reload {cfg['task']} runs; see {cfg_path}")
    if args.data_dir:
        cfg["data_dir"] = args.data_dir
    try:
        data = _load_task(cfg)
        model, _, metric_fn = _build(cfg, data.meta)
        params = model.init(jax.random.key(0))
        opt_state = _optimizer(cfg).init(params)
    except (KeyError, TypeError, ValueError) as e:
        what = f"the entry {e}" if isinstance(e, KeyError) else str(e)
        raise CLIError(f"{str(cfg_path)!r} does not describe a run: {what}") from None
    template = TrainState(params, opt_state, jax.numpy.asarray(0, "int32"), jax.random.key(0))
    try:
        state, _ = load_checkpoint(path, template)
    except CheckpointError as e:
        raise CLIError(str(e)) from None
    final = evaluate_batched(metric_fn, state.params, data.test, 500)
    final = {f"test_{k}": v for k, v in final.items()}
    print(f"{path}: step {int(state.step)}")
    print(_report(data.meta, cfg, final))
    return 0


def _run_config(cfg_path: Path) -> dict[str, Any]:
    """The ``config`` entry of a run's ``config.json``; one-line errors naming the file."""
    if not cfg_path.is_file():
        raise CLIError(f"{str(cfg_path)!r} (the run's configuration) does not exist")
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))["config"]
    except (ValueError, KeyError, TypeError) as e:
        why = "no 'config' entry" if isinstance(e, (KeyError, TypeError)) else f"not JSON ({e})"
        raise CLIError(f"{str(cfg_path)!r} is not a run configuration: {why}") from None
    from jaxrnn.models import CELLS

    if not isinstance(cfg, dict) or cfg.get("task") not in TASK_DEFAULTS:
        raise CLIError(f"{str(cfg_path)!r} is not a run configuration: no known 'task'")
    if cfg.get("cell") not in CELLS:
        raise CLIError(f"{str(cfg_path)!r} is not a run configuration: no known 'cell'")
    return cfg


# ---------------------------------------------------------------------------- compare


def cmd_compare(args: argparse.Namespace) -> int:
    import jax
    import numpy as np
    import optax

    from jaxrnn.grad import GRADIENT_METHODS
    from jaxrnn.models import linear, make_cell
    from jaxrnn.tasks import ADD_TASK_FLOORS, add_task_stream
    from jaxrnn.train import compare_methods

    if args.preset == "zucchet-copy":
        return _compare_copy(args)
    args.hidden, args.updates = args.hidden or 16, args.updates or 300
    H, L = args.hidden, args.chunk
    cell = make_cell(args.cell, 1, H)
    # default: the registry's methods, in its order, that apply to this cell
    default = [n for n, m in GRADIENT_METHODS.items() if cell.diagonal or not m.element_wise]
    args.methods = args.methods or ",".join(default)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in GRADIENT_METHODS]
    if unknown or not methods:
        raise CLIError(f"unknown method(s) {unknown}; known: {sorted(GRADIENT_METHODS)}")
    dense = [m for m in methods if GRADIENT_METHODS[m].element_wise and not cell.diagonal]
    if dense:
        raise CLIError(f"--methods {dense} need an element-wise cell; --cell {args.cell} is dense")
    seeds = _seed_list(args.seeds or "0")

    head_init, head_apply = linear(H, 2)

    def step_loss(head_params, y, target):
        return optax.softmax_cross_entropy(head_apply(head_params, y), target)

    def init(seed):
        kc, kh = jax.random.split(jax.random.key(seed))
        return cell.init(kc), head_init(kh)

    streams = {}
    for seed in seeds:
        x, y = add_task_stream(args.updates * L, seed)
        streams[seed] = (x.reshape(args.updates, L, 1), y.reshape(args.updates, L, 2))
    out = _out_dir(args.out, f"runs/compare-{time.strftime('%Y%m%d-%H%M%S')}")
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(args.lr))
    rows, curves = compare_methods(
        cell,
        step_loss,
        init,
        streams,
        methods,
        optimizer=opt,
        options={"k": args.tbptt_k},
        progress=not args.no_progress,
    )
    header = f"{'method':<8} {'final CE':>9} {'cos(BPTT)':>10} {'ms/step':>9} {'mem MiB':>9}"
    print(
        f"add task (lags 3, 8), {args.cell}-{H}, {args.updates} updates x {L} steps, seeds {seeds}"
    )
    print(header)
    for r in rows:
        print(
            f"{r['method']:<8} {r['final_loss']:>9.4f} {r['cosine_to_bptt']:>10.4f} "
            f"{r['ms_per_step']:>9.4f} {r['peak_mem_mib']:>9.3f}"
        )
    print("floors: " + ", ".join(f"{k} {v:.3f}" for k, v in ADD_TASK_FLOORS.items()))
    (out / "compare.json").write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    w = max(1, args.updates // 20)
    for name, cs in curves.items():
        c = np.mean(cs, axis=0)
        ax.plot(np.convolve(c, np.ones(w) / w, mode="valid"), label=name)
    for k, v in ADD_TASK_FLOORS.items():
        ax.axhline(v, ls=":", c="gray")
        ax.text(0, v, k, fontsize=7, va="bottom")
    ax.set_xlabel(f"update ({L} steps each)")
    ax.set_ylabel("cross-entropy per step")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "compare.png", dpi=100)
    plt.close(fig)
    print(f"wrote {out}/compare.json, compare.png")
    return 0


def _seed_list(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise CLIError(f"--seeds must be comma-separated integers, got {text!r}") from None
    if not seeds or any(s < 0 for s in seeds):
        raise CLIError(f"--seeds must be non-negative integers, got {text!r}")
    return seeds


def _compare_copy(args: argparse.Namespace) -> int:
    """``jaxrnn compare --preset zucchet-copy`` (:mod:`jaxrnn.online_copy`)."""
    import numpy as np
    from tqdm.auto import tqdm

    from jaxrnn.online_copy import COPY_METHODS, PAPER_RANKING, compare_online_copy

    methods = [m.strip() for m in (args.methods or ",".join(COPY_METHODS)).split(",")]
    if any(m not in COPY_METHODS for m in methods):
        raise CLIError(f"--methods for zucchet-copy must be among {list(COPY_METHODS)}")
    seeds = _seed_list(args.seeds or "0,1,2")
    H, updates = args.hidden or 32, args.updates or 1500
    bar = tqdm(total=len(methods) * len(seeds) * (updates - 1), disable=args.no_progress)
    result = compare_online_copy(
        methods, hidden=H, layers=args.layers, updates=updates, lr=args.lr, seeds=seeds,
        progress=lambda *_: bar.update(),
    )  # fmt: skip
    bar.close()
    rows = result["rows"]
    print(f"copy task (Zucchet et al. 2023: pattern 10, pad 7, 7 bits), {args.layers} x "
          f"LRU-{H}, {updates} updates x batch 32, Adam {args.lr:g}, seeds {seeds}")  # fmt: skip
    print(
        f"{'method':<10} {'held-out BCE':>14} {'bit acc %':>12} {'cos(BPTT)':>10} {'ms/update':>10}"
    )
    for r in rows:
        print(
            f"{r['method']:<10} {r['final_loss']:>7.4f}±{r['final_loss_std']:.4f} "
            f"{100 * r['bit_accuracy']:>6.1f}±{100 * r['bit_accuracy_std']:.1f} "
            f"{r['cosine_to_bptt']:>10.4f} {r['ms_per_update']:>10.2f}"
        )
    ranked = sorted(rows, key=lambda r: r["final_loss"])
    ours = ranked[0]["method"]
    for a, b in itertools.pairwise(ranked):  # equal to 1e-4: a tie (one layer: online = BPTT)
        tie = abs(a["final_loss"] - b["final_loss"]) <= 1e-4 * abs(b["final_loss"])
        ours += (" = " if tie else " > ") + b["method"]
    print(f"ranking (lowest loss first): ours {ours}; paper {' > '.join(PAPER_RANKING)}")
    out = Path(args.out or f"runs/compare-copy-{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    result["args"] = {**vars(args), "seeds": seeds, "hidden": H, "updates": updates}
    (out / "compare.json").write_text(json.dumps(result, indent=1))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, c in result["curves"].items():
        ax.plot(result["eval_at"], np.mean(c, axis=1), "-o", label=name)
    ax.axhline(math.log(2), ls=":", c="gray")
    ax.text(result["eval_at"][0], math.log(2), "ln 2 (no memory)", fontsize=7, va="bottom")
    ax.set_xlabel("update")
    ax.set_ylabel("held-out BCE per bit")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "compare.png", dpi=100)
    plt.close(fig)
    print(f"wrote {out}/compare.json, compare.png")
    return 0


# ------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``jaxrnn`` and ``python -m jaxrnn``; returns the exit status."""
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        return {"train": cmd_train, "evaluate": cmd_evaluate, "compare": cmd_compare}[args.command](
            args
        )
    except (CLIError, ValueError, OSError) as e:
        if os.environ.get("JAXRNN_TRACEBACK"):  # show where the error came from
            raise
        msg = " ".join(str(e).split()) or type(e).__name__
        print(f"jaxrnn: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("jaxrnn: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
