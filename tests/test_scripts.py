"""The scripts in ``examples/`` and ``benchmarks/`` name only jaxrnn objects that exist.

They are too long to run in CI, so a refactor that moves a function can break them
unseen (``bench_peers.py`` once called a helper that had moved from ``jaxrnn.cli`` to
``jaxrnn.runs``). This reads each script's syntax tree and resolves, against the
installed library, every ``from jaxrnn... import name`` and every attribute read from
a name bound to a jaxrnn module (``import jaxrnn``, ``from jaxrnn import cli``), along
attribute chains (``jaxrnn.grad.bptt``). Nothing is executed but the imports.
"""

from __future__ import annotations

import ast
import importlib
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "examples").glob("*.py")) + sorted((ROOT / "benchmarks").glob("*.py"))


def _modules(tree: ast.Module) -> dict[str, types.ModuleType]:
    """Local names bound to jaxrnn modules anywhere in the script."""
    bound = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "jaxrnn":
                    top = a.asname or a.name.split(".")[0]
                    bound[top] = importlib.import_module(a.name if a.asname else "jaxrnn")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "jaxrnn":
            for a in node.names:
                full = f"{node.module}.{a.name}"
                try:
                    bound[a.asname or a.name] = importlib.import_module(full)
                except ModuleNotFoundError:
                    pass  # not a module: checked as a name by _missing
    return bound


def _missing(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    bound = _modules(tree)
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "jaxrnn":
            module = importlib.import_module(node.module)
            for a in node.names:
                if not hasattr(module, a.name):
                    problems.append(f"line {node.lineno}: from {node.module} import {a.name}")
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            chain, base = [], node
            while isinstance(base, ast.Attribute):
                chain.append(base.attr)
                base = base.value
            if not isinstance(base, ast.Name) or base.id not in bound:
                continue
            obj = bound[base.id]
            for name in reversed(chain):
                if not isinstance(obj, types.ModuleType):
                    break  # past the modules: attributes of objects are not checked
                if not hasattr(obj, name):
                    problems.append(f"line {node.lineno}: {base.id}.{'.'.join(reversed(chain))}")
                    break
                obj = getattr(obj, name)
    return sorted(set(problems))


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_script_names_only_existing_jaxrnn_objects(path):
    assert _missing(path) == []


def test_the_check_finds_a_moved_function(tmp_path):
    script = tmp_path / "old.py"
    script.write_text(
        "from jaxrnn import cli\nimport jaxrnn\nfrom jaxrnn.train import fit, no_such\n"
        "cli._load_task({})\njaxrnn.grad.bptt\njaxrnn.grad.no_such_method\n"
    )
    assert _missing(script) == [
        "line 3: from jaxrnn.train import no_such",
        "line 4: cli._load_task",
        "line 6: jaxrnn.grad.no_such_method",
    ]
