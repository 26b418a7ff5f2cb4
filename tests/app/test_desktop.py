"""``noise-studio --install-desktop-entry``: launcher, icon and the .studio MIME type."""

from __future__ import annotations

import configparser
import os
import shlex
import stat
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

from studio.app import main, parse_args
from studio.desktop import MIME_TYPE, desktop_entry, install_desktop_entry, launcher_command

NS = {"m": "http://www.freedesktop.org/standards/shared-mime-info"}


def read_entry(path: Path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keys are case-sensitive
    parser.read(path, encoding="utf-8")
    return parser["Desktop Entry"]


@pytest.fixture
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "share"
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    return home


def test_install_desktop_entry_writes_launcher_icon_and_mime_type(data_home, capsys):
    assert main(["--install-desktop-entry"]) == 0
    assert str(data_home / "applications" / "noise-studio.desktop") in capsys.readouterr().out

    entry = read_entry(data_home / "applications" / "noise-studio.desktop")
    assert entry["Type"] == "Application" and entry["Name"] == "Noise Studio"
    assert entry["Icon"] == "noise-studio"
    assert entry["MimeType"] == f"{MIME_TYPE};"
    *command, field = shlex.split(entry["Exec"])
    assert field == "%f" and command == launcher_command()
    program = Path(command[0])
    assert program.is_absolute() and os.access(program, os.X_OK)

    for kind, name in (("apps", "noise-studio"), ("mimetypes", MIME_TYPE.replace("/", "-"))):
        with Image.open(data_home / "icons" / "hicolor" / "128x128" / kind / f"{name}.png") as icon:
            assert icon.format == "PNG" and icon.size == (128, 128)

    root = ET.parse(data_home / "mime" / "packages" / "noise-studio.xml").getroot()
    (mime,) = root.findall("m:mime-type", NS)
    assert mime.get("type") == MIME_TYPE
    assert [g.get("pattern") for g in mime.findall("m:glob", NS)] == ["*.studio"]


def test_the_mime_database_is_refreshed_when_the_tool_exists(data_home):
    import shutil

    if shutil.which("update-mime-database") is None:
        pytest.skip("no update-mime-database here")
    install_desktop_entry()
    assert "*.studio" in (data_home / "mime" / "globs2").read_text()


def fake_tool(folder: Path, name: str, script: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_missing_or_failing_cache_tools_never_fail_the_install(
    data_home, tmp_path, monkeypatch, capsys
):
    empty = tmp_path / "bin-empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert len(install_desktop_entry(command=["/opt/noise studio/bin/noise-studio"])) == 4

    failing = tmp_path / "bin-failing"
    failing.mkdir()
    log = tmp_path / "calls.log"
    fake_tool(failing, "update-mime-database", f'echo "mime $1" >> {log}; echo broken >&2; exit 3')
    fake_tool(failing, "update-desktop-database", f'echo "desktop $1" >> {log}')
    monkeypatch.setenv("PATH", str(failing))
    install_desktop_entry(command=["/usr/bin/noise-studio"])
    assert log.read_text().splitlines() == [
        f"mime {data_home / 'mime'}",
        f"desktop {data_home / 'applications'}",
    ]
    assert "update-mime-database failed: broken" in capsys.readouterr().err


def test_data_home_defaults_to_local_share(tmp_path, monkeypatch):
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PATH", "")
    written = install_desktop_entry(command=["/usr/bin/noise-studio"])
    assert tmp_path / ".local" / "share" / "applications" / "noise-studio.desktop" in written


def test_exec_quotes_a_path_with_spaces_and_quotes(tmp_path):
    entry = tmp_path / "e.desktop"
    entry.write_text(desktop_entry(['/opt/My "Apps"/bin/noise-studio', "-m", "studio"]))
    # The key's string escapes undone once, then the Exec quoting (shell-like) undone.
    value = read_entry(entry)["Exec"].replace("\\\\", "\\")
    assert shlex.split(value) == ['/opt/My "Apps"/bin/noise-studio', "-m", "studio", "%f"]


def test_a_project_file_on_the_command_line_is_parsed():
    args = parse_args(["work/car.studio", "--model", "bundled"])
    assert args.project == "work/car.studio" and not args.install_desktop_entry
    assert parse_args([]).project is None
