"""The Ray backend costs nothing until it is used: importing it loads no Ray, torch or Qt."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_ray_client_actor_and_cli_import_no_ray_torch_or_qt():
    code = (
        "import sys\n"
        "import studio.workers.ray_client, studio.workers.ray_actor, studio.cli_cluster\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('ray', 'torch', 'PySide6')]\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
