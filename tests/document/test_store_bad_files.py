"""Files the store must refuse with one clear sentence, without writing a byte to them."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from studio.document.store import SCHEMA_VERSION, ProjectError, ProjectErrorReason, ProjectStore
from studio.protocol import StepRecord

R = ProjectErrorReason


def _good_project(path: Path, versions: int = 6) -> Path:
    with ProjectStore.create(path) as store:
        for n in range(versions):
            v = store.add_version(recipe_json="{}", name=f"v{n}").result()
            for i in range(4):
                store.append_step(v, StepRecord(i, 4, i, None, os.urandom(9000), _PIXEL, _PIXEL))
        store.add_layer(pixels=_PIXEL, name="layer").result()
    return path


_PIXEL = np.zeros((1, 1, 3), np.uint8)


def _not_sqlite(path: Path) -> None:
    path.write_bytes(b"Hello, this is a text file that someone renamed to .studio\n" * 40)


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _truncated_half(path: Path) -> None:
    _good_project(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _truncated_header(path: Path) -> None:
    _good_project(path)
    path.write_bytes(path.read_bytes()[:60])


def _truncated_odd(path: Path) -> None:
    _good_project(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 1000])


def _corrupt_pages(path: Path) -> None:
    _good_project(path)
    data = bytearray(path.read_bytes())
    page = 4096
    # scribble over the b-tree pages after the schema page, keep the header intact
    garbage = bytes((i * 37 + 11) % 256 for i in range(page))
    for n in range(1, 4):
        data[n * page : (n + 1) * page] = garbage
    path.write_bytes(bytes(data))


def _newer_schema(path: Path) -> None:
    _good_project(path)
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.close()


def _other_apps_database(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url TEXT)")
    conn.execute("INSERT INTO moz_places(url) VALUES ('https://example.org')")
    conn.commit()
    conn.close()


def _read_only(path: Path) -> None:
    _good_project(path)
    path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)


CASES: dict[str, tuple[Callable[[Path], None], ProjectErrorReason, str]] = {
    "not sqlite": (_not_sqlite, R.NOT_A_PROJECT, "not a noise studio project"),
    "empty": (_empty, R.NOT_A_PROJECT, "empty"),
    "truncated in half": (_truncated_half, R.TRUNCATED, "truncated"),
    "truncated inside header": (_truncated_header, R.TRUNCATED, "truncated"),
    "truncated mid page": (_truncated_odd, R.TRUNCATED, "truncated"),
    "corrupt pages": (_corrupt_pages, R.CORRUPT, "damaged"),
    "newer schema": (_newer_schema, R.NEWER_SCHEMA, "newer version"),
    "another app's database": (_other_apps_database, R.NOT_A_PROJECT, "not a noise studio project"),
    "read-only": (_read_only, R.READ_ONLY, "read-only"),
}


def _fingerprint(folder: Path) -> dict[str, tuple[str, int]]:
    return {
        p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(folder.iterdir())
    }


@pytest.mark.parametrize("case", list(CASES))
def test_bad_file_is_refused_and_left_untouched(tmp_path: Path, case: str) -> None:
    make, reason, words = CASES[case]
    folder = tmp_path / "folder"
    folder.mkdir()
    path = folder / "bad.studio"
    make(path)
    before = _fingerprint(folder)
    assert list(before) == ["bad.studio"]

    with pytest.raises(ProjectError) as info:
        ProjectStore.open(path)

    message = str(info.value)
    assert info.value.reason is reason, message
    assert words in message.lower()
    assert message.count(". ") == 0 and message.endswith("."), "one sentence"
    assert "bad.studio" in message
    assert _fingerprint(folder) == before, (
        "the file is byte-for-byte unchanged and nothing was added"
    )


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ProjectError) as info:
        ProjectStore.open(tmp_path / "nowhere.studio")
    assert info.value.reason is R.MISSING
    assert not (tmp_path / "nowhere.studio").exists()


def test_a_folder_named_like_a_project(tmp_path: Path) -> None:
    (tmp_path / "dir.studio").mkdir()
    with pytest.raises(ProjectError) as info:
        ProjectStore.open(tmp_path / "dir.studio")
    assert info.value.reason is R.NOT_A_PROJECT


def test_a_good_file_still_opens_after_the_checks(tmp_path: Path) -> None:
    path = _good_project(tmp_path / "good.studio")
    with ProjectStore.open(path) as store:
        assert len(store.versions()) == 6
        assert store.integrity_check() == "ok"


@pytest.mark.parametrize("case", ["corrupt pages", "truncated in half", "newer schema"])
def test_big_files_get_the_lighter_open_check_and_are_still_refused(
    tmp_path: Path, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from studio.document.store import checks

    monkeypatch.setattr(checks, "FULL_CHECK_BYTES", 0)
    make, reason, _ = CASES[case]
    path = tmp_path / "big.studio"
    make(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(ProjectError) as info:
        ProjectStore.open(path)
    assert info.value.reason is reason
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    with ProjectStore.open(_good_project(tmp_path / "good.studio")) as store:
        assert len(store.versions()) == 6
