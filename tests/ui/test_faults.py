"""Runtime faults and hostile models where the user meets them (issue 7): the worker and the window.

Worker-level tests drive a fake engine whose model load and final decode can be held
open, so a cancel lands exactly where the test wants it. Window-level tests use the
tiny real model; faults are injected into the UNet forward of the model the worker
loaded, and hostile model folders are built on the spot.
"""

from __future__ import annotations

import math
import shutil
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from studio.engine.sampler import OOM_ADVICE
from studio.protocol import (
    JobCancelled,
    JobFailed,
    JobFinished,
    JobStarted,
    ModelFailed,
    ModelLoaded,
    StepMade,
)
from studio.ui.main_window import MainWindow
from studio.workers.local import LocalWorker
from tests.engine.hostile_inputs import evil_pickle, torch_style_zip
from tests.ui.conftest import (
    GENERATION_TIMEOUT_MS,
    generate_and_wait,
    open_window,
    set_small_recipe,
)
from tests.workers.harness import (
    RECIPE,
    Collector,
    Driver,
    FakeModel,
    FakeSampler,
    fake_worker,
    wait_for,
)

# ---- worker level: cancels at awkward moments ------------------------------------------


class HeldEngine:
    """A fake engine whose model load and final decode wait for the test when held."""

    def __init__(self) -> None:
        self.sampler = FakeSampler()
        self.loads = 0
        self.hold_load = False
        self.hold_decode = False
        self.loading = threading.Event()
        self.decoding = threading.Event()
        self.release = threading.Event()
        original_decode = self.sampler.decode

        def decode(latent, cancel=None):
            if self.hold_decode:
                self.decoding.set()
                self.release.wait(10)
            return original_decode(latent, cancel)

        self.sampler.decode = decode

    def load(self, _ref: str) -> FakeModel:
        self.loads += 1
        if self.hold_load:
            self.loading.set()
            self.release.wait(10)
        return FakeModel()


@pytest.fixture
def held(qapp) -> Iterator[tuple[Driver, HeldEngine, Collector]]:
    engine = HeldEngine()
    client = fake_worker(engine.sampler, load_model=engine.load)
    collector = Collector(client)
    client.start()
    worker = Driver(client)
    yield worker, engine, collector
    engine.release.set()
    assert worker.stop(timeout=10)


def assert_ran_completely(collector: Collector, job_id: int, steps: int = RECIPE.steps) -> None:
    """``job_id`` sent every step in order and finished on the decode of its own last latent."""
    indices = [m.step.index for m in collector.of(StepMade) if m.job_id == job_id]
    assert indices == list(range(steps))
    (finished,) = [m for m in collector.of(JobFinished) if m.job_id == job_id]
    assert np.all(finished.image == steps - 1)


def release_all(engine: HeldEngine) -> None:
    """Let a gated fake sampler run freely from now on."""
    gate = engine.sampler.gate
    engine.sampler.gate = None
    if gate is not None:
        for _ in range(RECIPE.steps):
            gate.release()


def test_cancel_during_the_final_decode_ends_cleanly_and_the_next_job_is_correct(qtbot, held):
    worker, engine, collector = held
    engine.hold_decode = True
    first = worker.submit(RECIPE)
    qtbot.waitUntil(engine.decoding.is_set, timeout=10_000)
    worker.cancel()
    engine.hold_decode = False
    engine.release.set()
    second = worker.submit(RECIPE.with_changes(seed=2, steps=3))
    qtbot.waitUntil(lambda: any(m.job_id == second for m in collector.of(JobFinished)))
    ended = [m for m in collector.of(JobFinished) + collector.of(JobCancelled) if m.job_id == first]
    assert len(ended) == 1  # all steps were done, so finishing is as clean as cancelling
    assert not collector.of(JobFailed)
    assert_ran_completely(collector, second, steps=3)
    assert engine.loads == 1


def test_cancel_during_the_model_load_of_a_job_ends_it_and_the_next_job_runs(qtbot, held):
    worker, engine, collector = held
    engine.hold_load = True
    first = worker.submit(RECIPE)
    qtbot.waitUntil(engine.loading.is_set, timeout=10_000)
    worker.cancel()
    second = worker.submit(RECIPE.with_changes(seed=2))
    engine.release.set()
    wait_for(qtbot, collector, JobFinished)
    assert collector.of(JobCancelled) == [JobCancelled(first, f"version-{first}", 0)]
    assert not [m for m in collector.of(StepMade) if m.job_id == first]
    assert not collector.of(JobFailed)
    assert_ran_completely(collector, second)
    assert engine.loads == 1  # the model loaded for the cancelled job serves the next one
    assert len(collector.of(ModelLoaded)) == 1


def test_cancel_while_a_model_loads_without_a_job_is_harmless(qtbot, held):
    worker, engine, collector = held
    engine.hold_load = True
    worker.load_model("bundled")
    qtbot.waitUntil(engine.loading.is_set, timeout=10_000)
    worker.cancel()
    worker.cancel_all()
    job = worker.submit(RECIPE)  # waits for the load, then runs
    engine.release.set()
    wait_for(qtbot, collector, JobFinished)
    assert not collector.of(JobCancelled) and not collector.of(JobFailed)
    assert_ran_completely(collector, job)
    assert engine.loads == 1


@pytest.mark.parametrize("by_id", [False, True])
def test_cancelling_twice_sends_one_cancelled_message(qtbot, held, by_id):
    worker, engine, collector = held
    engine.sampler.gate = threading.Semaphore(2)
    running = worker.submit(RECIPE)
    waiting = worker.submit(RECIPE.with_changes(seed=2))
    wait_for(qtbot, collector, StepMade, 2)
    for _ in range(2):
        worker.cancel(running if by_id else None)
        worker.cancel(waiting)
    third = worker.submit(RECIPE.with_changes(seed=3))
    release_all(engine)
    qtbot.waitUntil(lambda: any(m.job_id == third for m in collector.of(JobFinished)))
    cancelled = collector.of(JobCancelled)
    assert sorted(m.job_id for m in cancelled) == sorted([running, waiting])
    assert not collector.of(JobFailed)
    assert not [m for m in collector.of(JobStarted) if m.job_id == waiting]
    assert_ran_completely(collector, third)


def test_cancel_followed_at_once_by_a_new_job_runs_the_new_job_in_full(qtbot, held):
    worker, engine, collector = held
    engine.sampler.gate = threading.Semaphore(1)
    first = worker.submit(RECIPE)
    wait_for(qtbot, collector, StepMade)
    worker.cancel()
    second = worker.submit(RECIPE.with_changes(seed=2))
    release_all(engine)
    qtbot.waitUntil(lambda: any(m.job_id == second for m in collector.of(JobFinished)))
    assert [m.job_id for m in collector.of(JobCancelled)] == [first]
    assert not [m for m in collector.of(JobFinished) if m.job_id == first]
    assert_ran_completely(collector, second)
    started = [m.job_id for m in collector.of(JobStarted)]
    assert started == [first, second]


# ---- window level: the tiny real model ---------------------------------------------------


class UnetFault:
    """Replaces the loaded UNet's forward; on call ``at_call`` it answers ``fault(run)`` instead."""

    def __init__(self, unet: Any, at_call: int, fault: Callable[[Callable[[], Any]], Any]) -> None:
        self.calls = 0
        self._unet = unet
        self._original = unet.forward
        self._at_call = at_call
        self._fault = fault
        unet.forward = self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        index = self.calls
        self.calls += 1
        if index == self._at_call:
            return self._fault(lambda: self._original(*args, **kwargs))
        return self._original(*args, **kwargs)

    def remove(self) -> None:
        self._unet.forward = self._original


def _nan(run: Callable[[], Any]) -> Any:
    output = run()
    output.sample.fill_(math.nan)
    return output


def _out_of_memory(_run: Callable[[], Any]) -> Any:
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")


@pytest.fixture
def studio(qtbot, tiny_model_dir: Path, tmp_path: Path) -> Iterator[tuple[MainWindow, list]]:
    """The window on the tiny model, and the models its worker loaded (to inject faults into)."""
    from studio.engine.models import load_model

    loaded: list = []

    def load_and_keep(ref: str):
        model = load_model(ref)
        loaded.append(model)
        return model

    win = open_window(
        qtbot,
        tiny_model_dir,
        tmp_path / "settings.ini",
        worker=LocalWorker(load_model=load_and_keep),
    )
    yield win, loaded
    win.close()
    assert not win.session.client.is_running


def _pickle_renamed_safetensors(folder: Path, marker: Path) -> Path:
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(torch_style_zip(evil_pickle(marker)))
    return weights


def _truncated_safetensors(folder: Path, _marker: Path) -> Path:
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return weights


@pytest.mark.parametrize("damage", [_pickle_renamed_safetensors, _truncated_safetensors])
def test_a_hostile_model_is_refused_and_the_loaded_model_stays_usable(
    qtbot, studio, tiny_model_dir, tmp_path, damage
):
    window, loaded = studio
    folder = Path(shutil.copytree(tiny_model_dir, tmp_path / "downloaded-model"))
    marker = tmp_path / "code-ran"
    damaged = damage(folder, marker)
    loaded_label = window.model_label.text()

    with qtbot.waitSignal(
        window.session.message_handled,
        timeout=GENERATION_TIMEOUT_MS,
        check_params_cb=lambda m: isinstance(m, ModelFailed),
    ):
        window.panel.select_model(str(folder))

    assert not marker.exists()
    assert damaged.name in window.statusBar().currentMessage()
    assert damaged.name in window.panel.error_text()
    assert "\n" not in window.panel.error_text()
    assert window.panel.model_ref() == str(tiny_model_dir)
    assert window.model_label.text().startswith(loaded_label)
    assert len(loaded) == 1

    version = generate_and_wait(qtbot, window)
    assert version.recipe.model == str(tiny_model_dir)
    assert window.session.tree.result(version.id) is not None and not version.partial
    assert len(loaded) == 1  # the same model object served it: nothing was reloaded


def _generate_until_failed(qtbot, window: MainWindow):
    with qtbot.waitSignal(
        window.session.tree.version_finished, timeout=GENERATION_TIMEOUT_MS
    ) as blocker:
        assert window.generate() is not None
    return window.session.tree.get(blocker.args[0])


def test_a_nan_during_sampling_keeps_the_earlier_steps_and_sets_no_black_image(qtbot, studio):
    window, loaded = studio
    k = 2
    fault = UnetFault(loaded[-1].unet, k, _nan)
    version = _generate_until_failed(qtbot, window)
    fault.remove()

    assert version.partial and version.finished
    tree = window.session.tree
    assert version.step_indices == list(range(k))
    assert tree.result(version.id) is None
    assert window.canvas.current_array() is tree.step(version.id, k - 1).preview_x0
    assert f"step {k + 1} of 6" in window.panel.error_text()
    assert "NaN" in window.panel.error_text()
    assert f"step {k + 1} of 6" in window.statusBar().currentMessage()
    assert "failed" in window.version_view.caption.text()
    assert window.session.undo_stack.count() == 1  # the partial version is kept, undoably

    again = generate_and_wait(qtbot, window)
    result = tree.result(again.id)
    assert result is not None and not again.partial
    assert np.isfinite(result).all() and result.max() > 0


def test_out_of_memory_at_a_step_gives_advice_keeps_steps_and_the_next_job_runs(qtbot, studio):
    window, loaded = studio
    k = 3
    fault = UnetFault(loaded[-1].unet, k, _out_of_memory)
    version = _generate_until_failed(qtbot, window)
    fault.remove()

    tree = window.session.tree
    assert version.partial and tree.result(version.id) is None
    assert version.step_indices == list(range(k))
    error = window.panel.error_text()
    assert OOM_ADVICE in error and f"step {k + 1} of 6" in error
    assert "Traceback" not in window.statusBar().currentMessage()
    assert "failed" in window.version_view.caption.text()

    again = generate_and_wait(qtbot, window)
    assert again.step_indices == list(range(6))
    assert tree.result(again.id) is not None and not again.partial
    assert window.panel.error_text() == ""


def test_cancel_then_generate_at_once_in_the_window(qtbot, studio):
    window, _loaded = studio
    set_small_recipe(window, steps=400)
    with qtbot.waitSignal(window.session.tree.step_appended, timeout=GENERATION_TIMEOUT_MS):
        window.generate()
    window.actions_.cancel.trigger()
    set_small_recipe(window, steps=6)
    finished: list[str] = []
    window.session.tree.version_finished.connect(finished.append)
    with qtbot.waitSignal(window.session.tree.version_finished, timeout=GENERATION_TIMEOUT_MS):
        assert window.generate() is not None
    qtbot.waitUntil(lambda: len(finished) == 2, timeout=GENERATION_TIMEOUT_MS)
    cancelled, complete = (window.session.tree.get(v) for v in finished)
    assert cancelled.partial and cancelled.recipe.steps == 400
    assert not complete.partial and window.session.tree.result(complete.id) is not None
    assert complete.step_indices == list(range(6))


def test_quitting_while_a_job_runs_joins_the_worker_without_warnings(qtbot, studio, qtlog, capfd):
    window, _loaded = studio
    set_small_recipe(window, steps=500)
    with qtbot.waitSignal(window.session.tree.step_appended, timeout=GENERATION_TIMEOUT_MS):
        window.generate()
    assert window.session.client.is_running
    earlier_qt_messages = len(qtlog.records)  # the offscreen platform's notes on showing
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        window.close()
    assert not window.session.client.is_running
    assert caught == []
    assert [r.message for r in qtlog.records[earlier_qt_messages:]] == []
    assert "still busy" not in capfd.readouterr().err
