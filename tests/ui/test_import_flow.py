"""An image's recipe coming into the window: parsed off the UI thread, capped, never loading a model."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from studio import formats
from studio.engine.recipe import MAX_PROMPT_CHARS, Recipe
from studio.protocol import LoadModel, ModelFailed, ModelList, ModelLoaded, ModelLoading
from studio.ui import image_drop


@pytest.fixture
def offers(window, monkeypatch):
    """Answer "load the recipe?" with yes, and keep what was asked."""
    asked: list[tuple[str, Recipe, tuple[str, ...]]] = []

    def ask(name, recipe, warnings):
        asked.append((name, recipe, tuple(warnings)))
        return True

    monkeypatch.setattr(window.importer, "ask_load_recipe", ask)
    monkeypatch.setattr(window.importer, "show_error", lambda text: None)
    return asked


@pytest.fixture
def traffic(window, monkeypatch):
    """Every request the session sends to the worker and every message it handles, from now on."""
    seen: dict[str, list] = {"sent": [], "handled": []}
    send = window.session.client.send

    def recording_send(request):
        seen["sent"].append(request)
        return send(request)

    monkeypatch.setattr(window.session.client, "send", recording_send)
    window.session.message_handled.connect(seen["handled"].append)
    return seen


def _png_with_recipe(path: Path, recipe: Recipe) -> Path:
    """A PNG whose recipe is written as given, a local model path included: our own exports
    name the model only, but an image from elsewhere may carry anything."""
    info = PngInfo()
    info.add_itxt(formats.PARAMETERS_KEY, recipe.to_parameters())
    info.add_itxt(formats.RECIPE_KEY, recipe.to_json())
    Image.fromarray(np.full((16, 16, 3), 80, np.uint8)).save(path, pnginfo=info)
    return path


def test_the_recipe_is_parsed_off_the_ui_thread_and_import_does_not_wait_for_it(
    qtbot, window, offers, tmp_path, monkeypatch
):
    release, parsed_on = threading.Event(), []

    def slow_parse(metadata, samplers):
        parsed_on.append(threading.current_thread())
        assert release.wait(30)  # the UI thread would deadlock here if it waited for the parse
        return formats.recipe_from_metadata(metadata, samplers)

    monkeypatch.setattr(image_drop, "recipe_from_metadata", slow_parse)
    path = _png_with_recipe(tmp_path / "slow.png", Recipe("a heron", seed=8, width=32, height=32))
    (layer,) = window.importer.import_files([path])  # returns while the parse is still held
    assert layer.name == "slow" and offers == []
    with qtbot.waitSignal(window.importer.recipe_offered, timeout=10_000):
        release.set()
    assert parsed_on and parsed_on[0] is not threading.main_thread()
    assert window.panel.recipe().prompt == "a heron"


def test_a_one_megabyte_one_word_prompt_reaches_the_panel_cut_with_a_warning(
    qtbot, window, offers, tmp_path
):
    path = _png_with_recipe(tmp_path / "huge.png", Recipe("q" * 1_000_000, seed=2))
    with qtbot.waitSignal(window.importer.recipe_offered, timeout=10_000):
        window.importer.import_files([path])
    ((_name, recipe, warnings),) = offers
    assert len(recipe.prompt) == MAX_PROMPT_CHARS
    assert any("1,000,000" in w for w in warnings)
    assert window.panel.prompt.toPlainText() == "q" * MAX_PROMPT_CHARS


def test_accepting_a_recipe_never_loads_the_model_it_names(
    qtbot, window, offers, traffic, tmp_path
):
    elsewhere = tmp_path / "downloads" / "evil-model"
    elsewhere.mkdir(parents=True)  # exists, so the import keeps its name
    held = window.panel.model_ref()
    recipe = Recipe("a tower", seed=5, width=32, height=32, model=str(elsewhere))
    path = _png_with_recipe(tmp_path / "tower.png", recipe)
    with qtbot.waitSignal(window.importer.recipe_offered, timeout=10_000):
        window.importer.import_files([path])
    qtbot.wait(300)  # a load request would have been sent and answered by now
    assert not [r for r in traffic["sent"] if isinstance(r, LoadModel)]
    assert not [
        m for m in traffic["handled"] if isinstance(m, (ModelLoading, ModelLoaded, ModelFailed))
    ]
    panel = window.panel
    assert panel.model_ref() == held and window.session.model.ref == held
    assert panel.recipe().prompt == "a tower" and panel.recipe().model == held
    note = panel.model_note.text()
    assert panel.model_note.isVisibleTo(panel) and "evil-model" in note
    assert str(elsewhere.parent) not in note  # outside the model folders: only a name
    assert panel.model.findData(str(elsewhere)) < 0  # and never an entry to pick


def test_a_listed_model_named_by_a_recipe_loads_only_when_the_user_picks_it(
    qtbot, window, offers, traffic, tmp_path
):
    held = window.panel.model_ref()
    other = str(tmp_path / "models" / "other")
    Path(other).mkdir(parents=True)
    with qtbot.waitSignal(  # the worker's own listing arrives first and cannot replace ours
        window.session.message_handled, check_params_cb=lambda m: isinstance(m, ModelList)
    ):
        window.session.list_models(())
    window.panel.set_models([("tiny", held), ("other", other)])
    path = _png_with_recipe(tmp_path / "o.png", Recipe("a boat", width=32, height=32, model=other))
    with qtbot.waitSignal(window.importer.recipe_offered, timeout=10_000):
        window.importer.import_files([path])
    qtbot.wait(300)
    assert not [r for r in traffic["sent"] if isinstance(r, LoadModel)]
    assert "other" in window.panel.model_note.text() and window.panel.model_ref() == held
    window.panel.model.setCurrentIndex(window.panel.model.findData(other))  # the user picks it
    assert [r.ref for r in traffic["sent"] if isinstance(r, LoadModel)] == [other]
    assert not window.panel.model_note.isVisibleTo(window.panel)
