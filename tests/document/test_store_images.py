"""Schema version 3: init images and masks kept by content hash; version-2 files upgraded."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from studio.document.project import Project
from studio.document.store import SCHEMA_VERSION, ProjectStore, check_project_file, files
from studio.document.store.migration import create_v2_schema
from studio.engine.recipe import Recipe, image_hash


def _v2_file(path: Path) -> None:
    files.create_database(path, create_v2_schema)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute(
            "INSERT INTO versions(id, parent_id, branch_step, name, recipe_json, created)"
            " VALUES ('root', NULL, NULL, 'v1', ?, 1.0)",
            (Recipe("a cat", seed=1, steps=4).to_json(),),
        )
    finally:
        conn.close()


def test_a_version_2_file_is_upgraded_after_a_backup(tmp_path: Path) -> None:
    path = tmp_path / "old.studio"
    _v2_file(path)
    assert check_project_file(path) == 2
    image = np.arange(8 * 6 * 3, dtype=np.uint8).reshape(8, 6, 3)
    with ProjectStore.open(path) as store:
        assert store.backup_before_upgrade == tmp_path / "old.v2-backup.studio"
        assert store.schema_version == SCHEMA_VERSION == 3
        assert [v.id for v in store.versions()] == ["root"]
        store.put_image(image_hash(image), "image", image).result()
    assert check_project_file(path) == 3  # exactly version 3's layout
    assert check_project_file(tmp_path / "old.v2-backup.studio") == 2
    with ProjectStore.open(path, writing=False) as store:
        assert np.array_equal(store.image(image_hash(image)), image)
        assert store.image("0" * 64) is None


def test_a_version_2_file_reads_before_its_upgrade_with_no_images_and_no_mask(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.studio"
    _v2_file(path)
    before = path.read_bytes()
    with ProjectStore.open(path, writing=False) as store:
        document = Project.read(store)
        assert [v.id for v in document.versions] == ["root"]
        assert store.canvas_mask() is None and store.image("0" * 64) is None
    assert path.read_bytes() == before


def test_images_are_kept_once_by_hash_and_masks_too(tmp_path: Path) -> None:
    image = np.full((4, 4, 3), 7, np.uint8)
    mask = np.zeros((4, 4), np.uint8)
    mask[1:3, 1:3] = 255
    with ProjectStore.create(tmp_path / "p.studio") as store:
        store.put_image(image_hash(image), "image", image).result()
        store.put_image(image_hash(image), "image", image).result()
        store.put_image(image_hash(mask), "mask", mask).result()
        count = store.submit(lambda c: c.execute("SELECT count(*) FROM images").fetchone()[0])
        assert count.result() == 2
        assert np.array_equal(store.image(image_hash(mask)), mask)
