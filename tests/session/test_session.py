"""The session without widgets: generating, branching and what the document holds afterwards."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from studio.engine.recipe import Recipe
from studio.protocol import JobFinished, ModelLoaded
from studio.session import BranchTarget, Session
from studio.workers.local import LocalWorker

ROOT = Path(__file__).resolve().parents[2]


def _tiny_worker() -> LocalWorker:
    from studio.engine.models import load_model

    return LocalWorker(load_model=lambda ref: load_model(ref, device="cpu"))


@pytest.fixture
def session(qapp, qtbot, tiny_model_dir):
    made = Session(_tiny_worker(), str(tiny_model_dir))
    with qtbot.waitSignal(
        made.message_handled, timeout=60_000, check_params_cb=lambda m: isinstance(m, ModelLoaded)
    ):
        made.start()
    yield made
    assert made.shutdown()


def _recipe(model: str, **changes) -> Recipe:
    base = Recipe("a red fox in the snow", seed=1234, steps=6, guidance=5.0, sampler="Euler a")
    return base.with_changes(width=32, height=32, model=model, **changes)


def _run(qtbot, session: Session, recipe: Recipe, branch: BranchTarget | None = None):
    """Generate and wait; returns the version the job fed."""
    with qtbot.waitSignal(
        session.message_handled,
        timeout=60_000,
        check_params_cb=lambda m: isinstance(m, JobFinished),
    ) as finished:
        session.generate(recipe, branch)
    return session.tree.get(finished.args[0].version_id)


def test_an_unchanged_branch_through_the_session_reproduces_its_parent(
    qtbot, session, tiny_model_dir
):
    recipe = _recipe(str(tiny_model_dir))
    parent = _run(qtbot, session, recipe)
    child = _run(qtbot, session, recipe, BranchTarget(parent.id, 2))
    assert (child.parent_id, child.branch_step, child.step_indices) == (parent.id, 2, [3, 4, 5])
    assert np.array_equal(session.tree.result(child.id), session.tree.result(parent.id))
    assert session.undo_stack.count() == 2
    assert session.current_version() is child


def test_no_tensor_is_reachable_from_the_document_after_a_generation(
    qtbot, session, tiny_model_dir
):
    import torch

    parent = _run(qtbot, session, _recipe(str(tiny_model_dir)))
    _run(
        qtbot,
        session,
        _recipe(str(tiny_model_dir), prompt="a blue fox"),
        BranchTarget(parent.id, 1),
    )
    found: dict[str, int] = {}
    seen: set[int] = set()
    frontier: list[object] = [
        session.tree.versions(),
        vars(session.tree.steps),
        session.jobs,
        vars(session)["_decoded"],
        session.layers.layers,
    ]
    while frontier:
        item = frontier.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        found[type(item).__name__] = found.get(type(item).__name__, 0) + 1
        assert not isinstance(item, torch.Tensor), "a tensor is reachable from the document"
        if isinstance(item, (bytes, str, int, float, bool, np.ndarray)) or item is None:
            continue
        if isinstance(item, dict):
            frontier += [*item.keys(), *item.values()]
        elif isinstance(item, (list, tuple, set)):
            frontier += list(item)
        elif dataclasses.is_dataclass(item):
            frontier += [getattr(item, f.name) for f in dataclasses.fields(item)]
        else:  # an object the walk cannot see inside could hold a tensor unseen
            raise AssertionError(f"the walk cannot see inside a {type(item).__name__}")
    assert found.get("StepRecord", 0) == 6 + 4 and found.get("bytes", 0) >= 10


def test_the_cli_and_the_window_worker_render_the_same_pixels(qtbot, qapp, tmp_path):
    """Both use the one torch thread count (studio_torch_threads), so a recipe gives one image."""
    import torch

    recipe = Recipe("a red car on a mountain road at sunset", seed=7, steps=4)
    threads = torch.get_num_threads()
    session = Session(LocalWorker())  # the window's worker, with its own thread policy
    try:
        with qtbot.waitSignal(
            session.message_handled,
            timeout=120_000,
            check_params_cb=lambda m: isinstance(m, JobFinished),
        ) as finished:
            session.start()
            session.generate(recipe)
        window_sha = hashlib.sha256(finished.args[0].image.tobytes()).hexdigest()
    finally:
        assert session.shutdown()
        torch.set_num_threads(threads)
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "main.py"),
            "render",
            "--prompt",
            recipe.prompt,
            "--seed",
            "7",
            "--steps",
            "4",
            "--out",
            str(tmp_path / "cli.png"),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        check=True,
    )
    assert json.loads(out.stdout.strip().splitlines()[-1])["sha256"] == window_sha
