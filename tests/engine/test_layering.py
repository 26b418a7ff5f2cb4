"""The dependency rules of DESIGN.md: the engine never imports Qt; the document never imports QtWidgets."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
QT_MODULES = ("PySide6", "PyQt5", "PyQt6", "PySide2", "qasync", "shiboken6")


def _imports(folder: Path) -> list[tuple[Path, str]]:
    found = []
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found += [(path, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.append((path, node.module))
                found += [(path, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def test_engine_source_never_imports_qt():
    offenders = [
        (p.name, m)
        for p, m in _imports(ROOT / "studio" / "engine")
        if m.split(".")[0] in QT_MODULES
    ]
    assert offenders == []


def test_document_source_never_imports_qtwidgets():
    offenders = [(p.name, m) for p, m in _imports(ROOT / "studio" / "document") if "QtWidgets" in m]
    assert offenders == []


def test_importing_the_whole_engine_loads_no_qt():
    engine_modules = sorted(
        p.stem for p in (ROOT / "studio" / "engine").glob("*.py") if p.stem != "__init__"
    )
    code = (
        "import sys\n"
        + "".join(f"import studio.engine.{name}\n" for name in engine_modules)
        + f"bad = [m for m in sys.modules if m.split('.')[0] in {QT_MODULES!r}]\n"
        + "print(bad); sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_layering_check_catches_a_qt_import(tmp_path):
    (tmp_path / "bad.py").write_text("from PySide6.QtCore import QObject\n")
    assert [m for _, m in _imports(tmp_path) if m.split(".")[0] in QT_MODULES]


def _imports_of(path: Path) -> list[str]:
    return [m for p, m in _imports(path.parent) if p == path]


def test_the_protocol_imports_neither_torch_nor_qt():
    code = (
        "import sys, studio.protocol\n"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {(*QT_MODULES, 'torch')!r}]\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


TORCH_FREE_ENGINE = (
    "studio.engine.recipe",
    "studio.engine.schedulers",
    "studio.engine.memory",
    "studio.engine.memory_saving",
    "studio.engine.model_refs",
    "studio.engine.model_files",
    "studio.engine.model_hash",
    "studio.engine.errors",
    "studio.engine.seeds",
    "studio.engine.breeding",
    "studio.engine.grid",
    "studio.engine.batching",
    "studio.engine.init_pixels",
    "studio.engine.plugins",
)


def test_the_engine_modules_the_ui_may_use_load_no_torch():
    code = (
        "import sys\n"
        + "".join(f"import {name}\n" for name in TORCH_FREE_ENGINE)
        + "bad = [m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules]\n"
        + "print(bad); sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_worker_clients_and_the_session_keep_to_their_rooms():
    local = _imports_of(ROOT / "studio" / "workers" / "local.py")
    assert not [m for m in local if m.split(".")[0] in QT_MODULES], "the worker thread is Qt-free"
    session = _imports_of(ROOT / "studio" / "session.py")
    assert not [m for m in session if "QtWidgets" in m or m.startswith("studio.ui")]
    # The UI may use the engine's torch-free modules (the recipe and sampler names the panel
    # edits, size budgets, where models are and their file checks); the rest of the engine
    # is reached only through the session and the protocol.
    vocabulary = TORCH_FREE_ENGINE
    for path in (ROOT / "studio" / "ui").glob("*.py"):
        imports = _imports_of(path)
        assert not [
            m for m in imports if m.startswith("studio.engine.") and not m.startswith(vocabulary)
        ], f"{path.name} reaches into the engine; it goes through the session and the protocol"


def test_the_window_is_layout_and_wiring_and_no_feature_reaches_for_it():
    window = ROOT / "studio" / "ui" / "main_window.py"
    lines = len(window.read_text(encoding="utf-8").splitlines())
    assert lines < 350, f"main_window.py has {lines} lines; a feature belongs in its own module"
    # Features get the session and the widgets they work with (the window only as a Qt
    # parent, typed QWidget or QMainWindow), so none of them imports the window's class.
    reaching = [
        p.name
        for p, m in _imports(ROOT / "studio")
        if m.startswith("studio.ui.main_window") and p.name != "app.py"
    ]
    assert reaching == [], f"{reaching} import the window; they take the session instead"
