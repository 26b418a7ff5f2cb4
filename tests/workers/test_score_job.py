"""The Score job on the worker (tiny model): progress per item, Scored, cancel, wire form."""

from __future__ import annotations

import time

import numpy as np
import pytest

from studio.engine.plugins import PluginSpec
from studio.protocol import (
    JobCancelled,
    JobFailed,
    PluginScore,
    Score,
    Scored,
    ScoreProgress,
    ScoreRow,
    ScoreSetting,
    from_wire,
    to_wire,
)
from studio.workers.local import LocalWorker
from tests.workers.harness import Collector


def _wait(collector, kind, count=1, timeout=60.0):
    deadline = time.monotonic() + timeout
    while len(collector.of(kind)) < count:
        assert time.monotonic() < deadline, f"no {kind.__name__} within {timeout} s"
        time.sleep(0.005)


@pytest.fixture
def worker(tiny_model_dir):
    from studio.engine.models import load_model

    client = LocalWorker(load_model=lambda ref: load_model(ref, device="cpu"))
    collector = Collector(client)
    client.start()
    yield client, collector, str(tiny_model_dir)
    assert client.stop(timeout=30)


def _images(count: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(0)
    return tuple(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(count))


def test_score_reports_each_item_then_all_with_context(worker, tiny_sampler):
    from studio.engine.recipe import Recipe

    client, collector, model = worker
    recipe = Recipe(prompt="a red car", steps=2, width=16, height=16, model=model)
    checkpoint = list(tiny_sampler.run(recipe))[-1].checkpoint.to_bytes()
    images = _images(2)
    client.send(
        Score(7, "a red car", (*images, checkpoint), ("a", "b", "c"), ("a blue car",), model, 2, 1)
    )
    _wait(collector, Scored)
    progress = collector.of(ScoreProgress)
    assert [(p.done, p.total, p.row.key) for p in progress] == [
        (1, 3, "a"),
        (2, 3, "b"),
        (3, 3, "c"),
    ]
    scored = collector.of(Scored)[0]
    assert [row.key for row in scored.rows] == ["a", "b", "c"]
    assert len(scored.context_novelty) == 3 and len(scored.rows[0].alternative_fidelities) == 1
    assert scored.setting.timesteps == 2 and scored.setting.noises == 1
    assert scored.evaluations == 3 * 2 * 1 * 3

    client.send(Score(8, "a red car", images[:1], ("a",), (), model, 2, 1))
    _wait(collector, Scored, 2)
    again = collector.of(Scored)[1].rows[0]
    assert again.fidelity == scored.rows[0].fidelity and again.novelty == scored.rows[0].novelty


def test_score_cancels_like_any_job_and_fails_in_one_sentence(worker):
    client, collector, model = worker
    client.send(Score(1, "x", _images(40), (), (), model, 8, 4))
    _wait(collector, ScoreProgress)
    from studio.protocol import Cancel

    client.send(Cancel(1))
    _wait(collector, JobCancelled)
    cancelled = collector.of(JobCancelled)[0]
    assert cancelled.job_id == 1 and cancelled.version_id == "" and cancelled.steps_done < 40
    assert not collector.of(Scored)

    client.send(Score(2, "x", (b"not a checkpoint",), (), (), model, 2, 1))
    _wait(collector, JobFailed)
    failed = collector.of(JobFailed)[0]
    assert failed.job_id == 2 and "\n" not in failed.error and failed.error


def test_score_adds_a_named_value_per_plugin_to_every_row(
    worker, tiny_sampler, tiny_clip_dir, tiny_aesthetic_dir
):
    from studio.engine.plugins import load_plugins
    from studio.engine.preview import decode
    from studio.engine.recipe import Recipe

    client, collector, model = worker
    recipe = Recipe(prompt="a red car", steps=2, width=16, height=16, model=model)
    step = list(tiny_sampler.run(recipe))[-1].checkpoint
    specs = (
        PluginSpec("clip", str(tiny_clip_dir)),
        PluginSpec("aesthetic", str(tiny_aesthetic_dir), str(tiny_clip_dir)),
    )
    # Images and prompt for which the fixed tiny CLIP's cosine is positive (not clipped to 0).
    images = tuple(
        np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8) for seed in (0, 2)
    )
    prompt = "x" * 200
    items = (*images, step.to_bytes())
    client.send(Score(4, prompt, items, ("a", "b", "c"), (), model, 2, 1, plugins=specs))
    _wait(collector, Scored)
    rows = collector.of(Scored)[0].rows
    assert [[p.name for p in row.plugin_scores] for row in rows] == [["clip", "aesthetic"]] * 3
    local = load_plugins(specs)
    pixels = [*images, decode(tiny_sampler.model.vae, step.x0_pred)]
    for row, image in zip(rows, pixels, strict=True):
        expected = [plugin.score([image], prompt)[0] for plugin in local]
        # The worker decodes the checkpoint with its own thread count: a pixel may round apart.
        assert [p.value for p in row.plugin_scores] == pytest.approx(expected, abs=1e-3)
    assert rows[0].plugin_scores[0].value > 1.0 and rows[1].plugin_scores[0].value > 1.0
    assert len({row.plugin_scores[1].value for row in rows}) == 3
    progress = collector.of(ScoreProgress)
    assert [p.row.plugin_scores for p in progress] == [row.plugin_scores for row in rows]

    client.send(Score(5, "x", images, (), (), model, 2, 1, plugins=(PluginSpec("clip", model),)))
    _wait(collector, JobFailed)
    failed = collector.of(JobFailed)[0]
    assert failed.job_id == 5 and "config.json" in failed.error and "\n" not in failed.error
    assert not collector.of(ScoreProgress)[3:]


def test_score_messages_survive_the_wire():
    row = ScoreRow(
        "v1",
        0.25,
        1.5,
        1.75,
        (0.1, -0.2),
        np.arange(4, dtype=np.float32),
        (PluginScore("clip", 31.5), PluginScore("aesthetic", 5.25)),
    )
    setting = ScoreSetting("bundled", "abc", 8, 2, 0)
    for item in (
        Score(3, "p", (_images(1)[0], b"ckpt"), ("v1", "v2"), ("q",)),
        ScoreProgress(3, 1, 2, row),
        Scored(3, (row,), (0.9,), (float("nan"),), 1.0, setting, 32, 0.5),
    ):
        back = from_wire(to_wire(item))
        assert type(back) is type(item)
    assert np.array_equal(from_wire(to_wire(row)).features, row.features)
    request = from_wire(to_wire(Score(3, "p", (_images(1)[0], b"ckpt"), ("v1", "v2"))))
    assert request.items[1] == b"ckpt" and np.array_equal(request.items[0], _images(1)[0])
    assert from_wire(to_wire(setting)) == setting
    assert from_wire(to_wire(row)).plugin_scores == row.plugin_scores
    specs = (PluginSpec("clip", "/c"), PluginSpec("aesthetic", "/h", "/c"))
    assert from_wire(to_wire(Score(3, "p", (), plugins=specs))).plugins == specs
