"""The memory savers travel with LoadModel: the worker loads with them, loads the model
again when they change (and not otherwise), keeps them for later loads, and
$NOISE_STUDIO_MEMORY_SAVING overrides the savers it names."""

from __future__ import annotations

import pytest

from studio.engine.memory_saving import SETTINGS_ENV, MemorySaving
from studio.protocol import (
    Generate,
    JobFinished,
    LoadModel,
    ModelFailed,
    ModelLoaded,
    ModelLoading,
    from_wire,
    to_wire,
)
from studio.workers.local import _default_load_model
from tests.workers.harness import RECIPE, Collector, Driver, FakeModel, fake_worker


def test_load_model_carries_its_memory_saving_over_the_wire():
    request = LoadModel("bundled", "", "vae_tiling=on,cpu_offload=off")
    assert from_wire(to_wire(request)) == request
    assert LoadModel("bundled").memory_saving == ""


def test_the_worker_loads_with_the_savers_asked_for_and_again_when_they_change(qtbot):
    loads: list[tuple[str, str]] = []

    def load(ref: str, memory_saving: str = "") -> FakeModel:
        loads.append((ref, memory_saving))
        return FakeModel()

    client = fake_worker(load_model=load)
    collector = Collector(client)
    client.start()
    try:
        client.send(LoadModel("bundled"))
        qtbot.waitUntil(lambda: len(collector.of(ModelLoaded)) == 1, timeout=20_000)
        client.send(LoadModel("bundled", "", "vae_tiling=on"))
        qtbot.waitUntil(lambda: len(collector.of(ModelLoaded)) == 2, timeout=20_000)
        client.send(LoadModel("bundled", "", "vae_tiling=on"))  # held with these: no load
        Driver(client).submit(RECIPE.with_changes(model="bundled"))
        qtbot.waitUntil(lambda: bool(collector.of(JobFinished)), timeout=20_000)
        client.send(LoadModel("other"))  # savers back to automatic, for this and later loads
        qtbot.waitUntil(lambda: len(collector.of(ModelLoaded)) == 3, timeout=20_000)
    finally:
        client.stop()
    assert loads == [("bundled", ""), ("bundled", "vae_tiling=on"), ("other", "")]


def test_a_failed_load_with_new_savers_keeps_the_model_and_its_savers(qtbot):
    loads: list[str] = []

    def load(ref: str, memory_saving: str = "") -> FakeModel:
        loads.append(memory_saving)
        if memory_saving == "cpu_offload=on":
            raise RuntimeError("no GPU for offload")
        return FakeModel()

    client = fake_worker(load_model=load)
    collector = Collector(client)
    client.start()
    try:
        client.send(LoadModel("bundled"))
        qtbot.waitUntil(lambda: bool(collector.of(ModelLoaded)), timeout=20_000)
        client.send(LoadModel("bundled", "", "cpu_offload=on"))
        qtbot.waitUntil(lambda: bool(collector.of(ModelFailed)), timeout=20_000)
        Driver(client).submit(RECIPE.with_changes(model="bundled"))
        qtbot.waitUntil(lambda: bool(collector.of(JobFinished)), timeout=20_000)
    finally:
        client.stop()
    assert loads == ["", "cpu_offload=on"]  # the job ran on the model held, not a retry


def test_the_real_loader_takes_the_savers_and_the_environment_overrides_them(
    tiny_model_dir, monkeypatch
):
    monkeypatch.delenv(SETTINGS_ENV, raising=False)
    model = _default_load_model(str(tiny_model_dir), memory_saving="vae_tiling=on")
    assert model.memory_saving == MemorySaving(vae_tiling="on")
    monkeypatch.setenv(SETTINGS_ENV, "vae_tiling=off")
    assert MemorySaving.with_environment("vae_tiling=on,attention_slicing=on") == MemorySaving(
        vae_tiling="off", attention_slicing="on"
    )
    assert MemorySaving.with_environment("") == MemorySaving(vae_tiling="off")
    assert (
        MemorySaving(vae_tiling="on", cpu_offload="off").text() == "vae_tiling=on,cpu_offload=off"
    )
    assert MemorySaving.parse(MemorySaving().text()) == MemorySaving()


def test_a_bad_environment_value_fails_the_load_in_one_sentence(monkeypatch, tiny_model_dir):
    from studio.engine.errors import ModelError

    monkeypatch.setenv(SETTINGS_ENV, "vae_tiling=maybe")
    with pytest.raises(ModelError, match="Unknown memory saving"):
        _default_load_model(str(tiny_model_dir), memory_saving="vae_tiling=on")


class _RecordingHandle:
    """A Ray actor handle that keeps what is sent to it (``handle.send.remote(wire)``)."""

    def __init__(self) -> None:
        self.sent: list[object] = []
        self.send = self
        self.remote = lambda wire: self.sent.append(from_wire(wire))


def test_the_ray_client_gives_each_actor_the_savers_before_its_next_job():
    from studio.workers.ray_client import RayWorker, _Actor, _RemoteJob

    client = RayWorker()
    posted: list[object] = []
    client.listen(posted.append)
    asked, other = _Actor(_RecordingHandle(), 1), _Actor(_RecordingHandle(), 2)
    client._actors, client._size = [asked, other], 2
    loaded = ModelLoaded("bundled", "tiny", 8, 64, 0, 0, 0)
    client._on_model_message(asked, loaded)
    client._on_model_message(other, loaded)
    posted.clear()

    client.send(LoadModel("bundled", "", "vae_tiling=on"))
    client._serve_side(client._side.popleft())
    assert asked.handle.sent == [LoadModel("bundled", "", "vae_tiling=on")]
    assert posted == []  # not "held already": the actor loads it again, and says so
    client._on_model_message(asked, ModelLoading("bundled"))
    assert posted == [ModelLoading("bundled")]

    asked.job = _RemoteJob(Generate(9, "v", RECIPE))  # busy: the job goes to the other
    job = Generate(1, "version-1", RECIPE.with_changes(model="bundled"))
    client._start_job(_RemoteJob(job))
    assert other.handle.sent == [LoadModel("bundled", "", "vae_tiling=on"), job]
