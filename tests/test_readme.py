"""The README's Python examples run as written, in a fresh interpreter with JAX's
default settings (no float64, standard promotion), as a newcomer would run them. It
inherits the environment, so the suite's XLA compile-speed flag (conftest.py) too."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_examples_run(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 3
    prelude = "import torch\ntorch_lstm = torch.nn.LSTM(4, 6, num_layers=2, bidirectional=True)\n"
    script = tmp_path / "readme_examples.py"
    script.write_text(prelude + "\n".join(blocks) + "\nprint('README OK')\n")
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "README OK" in out.stdout
