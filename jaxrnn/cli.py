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

The command is a thin layer over :mod:`jaxrnn.runs`, where the runs themselves live
(configuration, training, files, evaluation, comparisons): this module parses the
options, calls it and prints. Bad input exits with status 2 and one line ``jaxrnn: error: ...``.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jaxrnn import runs
from jaxrnn.runs import PRESETS, TASK_DEFAULTS

__all__ = ["PRESETS", "TASK_DEFAULTS", "main"]


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
    """The run configuration of ``jaxrnn train``'s options (:func:`jaxrnn.runs.run_config`)."""
    given = {k: getattr(args, k) for k in runs.OPTIONS if getattr(args, k, None) is not None}
    return runs.run_config(args.task, args.preset, **given)


def _check_out(path: str | None) -> None:
    """``--out`` must not name a file (checked before anything is built or written)."""
    if path is not None and Path(path).exists() and not Path(path).is_dir():
        raise CLIError(f"--out {path!r} is a file, not a directory")


def _stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def _report(meta: dict, cfg: dict, final: dict) -> str:
    """The test metrics as ``train`` and ``evaluate`` print them (MNIST-1D: beside the
    paper's table; other tasks: their baselines and published numbers)."""
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


def cmd_train(args: argparse.Namespace) -> int:
    _check_out(args.out)
    run = runs.prepare_run(_config(args))
    cfg = run.cfg
    out = Path(args.out or f"runs/{cfg['task']}-{cfg['cell']}-{_stamp()}")
    if run.model is None:  # an application task: its own report
        print(f"jaxrnn train: {run.describe()}")
        result = runs.train_run(run, out, resume=args.resume, progress=not args.no_progress)
        print("\n".join(result.report))
        print(f"wall time {result.wall_s:.1f} s; wrote {out}/")
        return 0
    print(f"jaxrnn train: {run.describe()} out={out}")
    result = runs.train_run(run, out, resume=args.resume, progress=not args.no_progress)
    print(_report(run.data.meta, cfg, result.final))
    for line in result.samples:
        print(line)
    wrote = ", ".join(result.files) or "(nothing)"
    print(f"wall time {result.wall_s:.1f} s; wrote {out}/\n  {wrote}")
    return 0


# --------------------------------------------------------------------------- evaluate


def cmd_evaluate(args: argparse.Namespace) -> int:
    ev = runs.evaluate_run(args.run, data_dir=args.data_dir)
    print(f"{ev.checkpoint}: step {ev.step}")
    print(_report(ev.meta, ev.cfg, ev.metrics))
    return 0


# ---------------------------------------------------------------------------- compare


def _methods(text: str | None) -> list[str] | None:
    return None if text is None else [m.strip() for m in text.split(",") if m.strip()]


def _seed_list(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise CLIError(f"--seeds must be comma-separated integers, got {text!r}") from None


def cmd_compare(args: argparse.Namespace) -> int:
    from jaxrnn.tasks import ADD_TASK_FLOORS

    _check_out(args.out)
    given = dict(methods=_methods(args.methods), seeds=_seed_list(args.seeds),
                 hidden=args.hidden, updates=args.updates)  # fmt: skip
    given = {k: v for k, v in given.items() if v is not None}
    if args.preset == "zucchet-copy":
        return _compare_copy(args, given)
    out = args.out or f"runs/compare-{_stamp()}"
    progress, record = not args.no_progress, vars(args)
    r = runs.compare_run(cell=args.cell, chunk=args.chunk, tbptt_k=args.tbptt_k, lr=args.lr,
                         out=out, progress=progress, record=record, **given)  # fmt: skip
    a = r.args
    print(f"add task (lags 3, 8), {a['cell']}-{a['hidden']}, {a['updates']} updates x "
          f"{a['chunk']} steps, seeds {a['seeds']}")  # fmt: skip
    print(f"{'method':<8} {'final CE':>9} {'cos(BPTT)':>10} {'ms/step':>9} {'mem MiB':>9}")
    for row in r.rows:
        print(
            f"{row['method']:<8} {row['final_loss']:>9.4f} {row['cosine_to_bptt']:>10.4f} "
            f"{row['ms_per_step']:>9.4f} {row['peak_mem_mib']:>9.3f}"
        )
    print("floors: " + ", ".join(f"{k} {v:.3f}" for k, v in ADD_TASK_FLOORS.items()))
    print(f"wrote {out}/compare.json, compare.png")
    return 0


def _compare_copy(args: argparse.Namespace, given: dict[str, Any]) -> int:
    """``jaxrnn compare --preset zucchet-copy`` (:func:`jaxrnn.runs.compare_copy_run`)."""
    from jaxrnn.online_copy import PAPER_RANKING

    out = args.out or f"runs/compare-copy-{_stamp()}"
    progress, record = not args.no_progress, vars(args)
    result = runs.compare_copy_run(layers=args.layers, lr=args.lr, out=out,
                                   progress=progress, record=record, **given)  # fmt: skip
    rows, spec = result["rows"], result["args"]
    print(f"copy task (Zucchet et al. 2023: pattern 10, pad 7, 7 bits), {spec['layers']} x "
          f"LRU-{spec['hidden']}, {spec['updates']} updates x batch 32, Adam {spec['lr']:g}, "
          f"seeds {spec['seeds']}")  # fmt: skip
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
    print(f"wrote {out}/compare.json, compare.png")
    return 0


# ------------------------------------------------------------------------------- main


def _dests(parser: argparse.ArgumentParser) -> set[str]:
    """The options' names as the library spells them (``data_dir`` for ``--data-dir``):
    a library error that starts with one names it as the option."""
    subs = [a.choices.values() for a in parser._actions if a.dest == "command"]
    return {a.dest for p in [parser, *subs[0]] for a in p._actions if a.option_strings}


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``jaxrnn`` and ``python -m jaxrnn``; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        return {"train": cmd_train, "evaluate": cmd_evaluate, "compare": cmd_compare}[args.command](
            args
        )
    except (CLIError, ValueError, TypeError, OSError) as e:
        if os.environ.get("JAXRNN_TRACEBACK"):  # show where the error came from
            raise
        msg = " ".join(str(e).split()) or type(e).__name__
        word = msg.split(" ", 1)[0]
        if not isinstance(e, CLIError) and word in _dests(parser):  # the library's name
            msg = "--" + word.replace("_", "-") + msg[len(word) :]
        print(f"jaxrnn: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("jaxrnn: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
