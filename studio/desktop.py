"""``noise-studio --install-desktop-entry``: register the installed app with a Linux desktop.

Writes, under ``$XDG_DATA_HOME`` (default ``~/.local/share``), the launcher
``applications/noise-studio.desktop`` (its ``Exec`` is the installed ``noise-studio`` with
``%f``, so a double-clicked project opens in it), the icon
``icons/hicolor/128x128/apps/noise-studio.png`` (also as the project files' icon), and the
shared-mime-info type ``application/x-noise-studio-project`` for ``*.studio`` in
``mime/packages/noise-studio.xml``; then refreshes the desktop's caches with
``update-mime-database`` and ``update-desktop-database`` where they exist (nothing fails
without them). Stdlib only: this runs without Qt or torch.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path

APP_ID = "noise-studio"
MIME_TYPE = "application/x-noise-studio-project"
ICON_SIZE = "128x128"


def data_home() -> Path:
    """``$XDG_DATA_HOME``, or ``~/.local/share`` when it is unset or not absolute (the spec)."""
    value = os.environ.get("XDG_DATA_HOME", "")
    if value and os.path.isabs(value):
        return Path(value)
    return Path.home() / ".local" / "share"


def launcher_command() -> list[str]:
    """The command that starts the installed app: the ``noise-studio`` script beside this
    Python (a venv's or pipx's ``bin``), else the one on ``PATH``, else ``python -m studio``."""
    names = ("noise-studio.exe", "noise-studio") if os.name == "nt" else ("noise-studio",)
    for name in names:
        beside = Path(sys.executable).parent / name
        if beside.is_file() and os.access(beside, os.X_OK):
            return [str(beside.absolute())]
    on_path = shutil.which("noise-studio")
    if on_path:
        return [str(Path(on_path).absolute())]
    return [str(Path(sys.executable).absolute()), "-m", "studio"]


def _exec_quote(argument: str) -> str:
    """One argument of a desktop entry's ``Exec`` key, quoted as the spec asks."""
    reserved = set(" \t\n\"'\\><~|&;$*?#()`")
    if argument and not reserved.intersection(argument):
        return argument.replace("%", "%%")
    escaped = "".join("\\" + c if c in '"`$\\' else c for c in argument).replace("%", "%%")
    # The desktop file's own string escaping doubles each backslash once more.
    return '"' + escaped.replace("\\", "\\\\") + '"'


def desktop_entry(command: Sequence[str]) -> str:
    template = (files("studio") / "resources" / "desktop" / f"{APP_ID}.desktop").read_text("utf-8")
    exec_line = " ".join(_exec_quote(part) for part in command)
    return template.replace("@EXEC@", exec_line).replace("@TRYEXEC@", _exec_quote(command[0]))


def _refresh(tool: str, folder: Path) -> None:
    """Run a cache tool on ``folder`` if it is installed; a failure is reported, never raised."""
    found = shutil.which(tool)
    if found is None:
        return
    try:
        result = subprocess.run(
            [found, str(folder)], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        print(f"warning: {tool} did not run: {exc}", file=sys.stderr)
        return
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        print(
            f"warning: {tool} failed: {detail[-1] if detail else result.returncode}",
            file=sys.stderr,
        )


def install_desktop_entry(
    home: Path | None = None, command: Sequence[str] | None = None
) -> list[Path]:
    """Write the launcher, icon and MIME type; return the files written."""
    home = data_home() if home is None else Path(home)
    command = list(command) if command else launcher_command()
    desktop = files("studio") / "resources" / "desktop"
    icon = desktop.joinpath(f"{APP_ID}.png").read_bytes()
    icons = home / "icons" / "hicolor" / ICON_SIZE
    targets = {
        home / "applications" / f"{APP_ID}.desktop": desktop_entry(command).encode("utf-8"),
        icons / "apps" / f"{APP_ID}.png": icon,
        icons / "mimetypes" / f"{MIME_TYPE.replace('/', '-')}.png": icon,
        home / "mime" / "packages" / f"{APP_ID}.xml": desktop.joinpath(
            f"{APP_ID}.xml"
        ).read_bytes(),
    }
    for path, data in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_bytes(data)
        os.replace(partial, path)
    _refresh("update-mime-database", home / "mime")
    _refresh("update-desktop-database", home / "applications")
    return list(targets)


def main() -> int:
    written = install_desktop_entry()
    for path in written:
        print(path)
    print(f"Noise Studio is registered for {MIME_TYPE} (*.studio).")
    return 0
