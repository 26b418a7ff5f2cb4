"""A branch made in the session carries its lineage: its exported image reproduces it from scratch."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from studio.document.export import export_image
from studio.engine.recipe import Recipe
from studio.protocol import JobFinished, ModelLoaded
from studio.session import BranchTarget, Session
from studio.workers.local import LocalWorker

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def session(qapp, qtbot, tiny_model_dir):
    from studio.engine.models import load_model

    made = Session(LocalWorker(load_model=lambda ref: load_model(ref, device="cpu")))
    made.model.ref = str(tiny_model_dir)
    with qtbot.waitSignal(
        made.message_handled, timeout=60_000, check_params_cb=lambda m: isinstance(m, ModelLoaded)
    ):
        made.start()
    yield made
    assert made.shutdown()


def _run(qtbot, session: Session, recipe: Recipe, branch: BranchTarget | None = None):
    with qtbot.waitSignal(
        session.message_handled,
        timeout=60_000,
        check_params_cb=lambda m: isinstance(m, JobFinished),
    ) as finished:
        session.generate(recipe, branch)
    return session.tree.get(finished.args[0].version_id)


def _render_from_file(path: Path, model: Path) -> dict:
    command = [sys.executable, str(ROOT / "main.py"), "render", "--recipe", str(path)]
    out = subprocess.run(
        [*command, "--model", str(model), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_exported_branches_render_from_scratch_to_their_pixels(
    qtbot, session, tiny_model_dir, tmp_path
):
    base = Recipe("a red fox in the snow", seed=1234, steps=7, guidance=5.0, sampler="DPM++ 2M SDE")
    base = base.with_changes(width=32, height=32, model=str(tiny_model_dir))
    root = _run(qtbot, session, base)
    branch = _run(qtbot, session, base.with_changes(prompt="a blue fox"), BranchTarget(root.id, 2))
    nested_recipe = base.with_changes(guidance=8.0, renoise_seed=9, renoise_strength=0.4)
    nested = _run(qtbot, session, nested_recipe, BranchTarget(branch.id, 4))

    assert branch.recipe.parent == root.recipe and branch.recipe.branch_step == 2
    assert nested.recipe.parent == branch.recipe and nested.recipe.lineage[0].recipe == root.recipe
    results = {}
    for name, version in (("branch", branch), ("nested", nested)):
        pixels = session.tree.result(version.id)
        exported = export_image(pixels, tmp_path / f"{name}.png", version.recipe)
        summary = _render_from_file(exported, tiny_model_dir)
        results[name] = summary["sha256"]
        assert summary["sha256"] == hashlib.sha256(pixels.tobytes()).hexdigest(), name
    # the lineage is what makes them reproduce: without it the same recipe gives other pixels
    plain = tmp_path / "plain.json"
    plain.write_text(nested.recipe.with_changes(lineage=()).to_json())
    assert _render_from_file(plain, tiny_model_dir)["sha256"] != results["nested"]
