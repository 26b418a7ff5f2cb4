"""The Ray client on a local cluster this module starts: the same pixels as in-process,
cancel within one step, a killed worker's job carried on exactly, one-sentence errors.

Skipped when the ``ray`` extra is not installed. One cluster of 2 CPUs serves the
module; every job runs on the bundled model (64×64) with a few steps.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install -e '.[ray]')")

from studio.cli import main as render_main  # noqa: E402
from studio.cli_explore import brood_main, grid_main  # noqa: E402
from studio.engine.model_refs import BUNDLED_PATH  # noqa: E402
from studio.engine.recipe import Recipe  # noqa: E402
from studio.protocol import (  # noqa: E402
    Cancel,
    Generate,
    JobCancelled,
    JobFailed,
    JobFinished,
    JobStarted,
    LoadModel,
    ModelLoaded,
    Score,
    Scored,
    ScoreProgress,
    ScoreRow,
    ScoreSetting,
    StepMade,
)
from studio.workers.ray_client import (  # noqa: E402
    ClusterError,
    RayWorker,
    _Actor,
    _RemoteJob,
    connect,
)
from tests.workers.harness import Collector  # noqa: E402

RECIPE = Recipe("a red circle on grass", seed=7, steps=24, sampler="Euler a")
ENDED = (JobFinished, JobCancelled, JobFailed)


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def pool(cluster):
    """One client for the job tests, so they share warm actors (each test alone works too)."""
    client = RayWorker(workers=2)
    client.start()
    yield client
    assert client.stop(timeout=20)


@pytest.fixture
def worker(pool):
    return pool, Collector(pool)


def _ended(collector: Collector, timeout: float = 60.0, job_id: int = 1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ended = [m for m in collector.of(ENDED) if m.job_id == job_id]
        if ended:
            return ended[0]
        time.sleep(0.02)
    raise AssertionError(f"no job ended; got {[type(m).__name__ for m in collector.all()]}")


def _cli_json(capsys, main, *argv: str) -> dict:
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_a_grid_on_the_cluster_gives_the_in_process_pixels(cluster, capsys, tmp_path):
    args = ["--prompt", "a house", "--steps", "3", "--seeds", "1,2", "--axis", "cfg=3,7"]
    args += ["--batch", "2", "--ray-workers", "1"]  # one actor: no second model load
    at_home = _cli_json(capsys, grid_main, *args, "--out", str(tmp_path / "home.png"))
    remote = _cli_json(
        capsys, grid_main, *args, "--out", str(tmp_path / "ray.png"), "--backend", "ray"
    )
    hashes = [c["sha256"] for c in remote["cells"]]
    assert hashes == [c["sha256"] for c in at_home["cells"]]
    assert len(set(hashes)) == 4  # the cells differ, so equality says something
    assert (tmp_path / "ray.png").read_bytes() == (tmp_path / "home.png").read_bytes()


def test_a_brood_on_the_cluster_gives_the_in_process_pixels(cluster, capsys, tmp_path):
    args = ["--parents", "11:1,22:1", "--prompt", "a tree", "--steps", "3", "--children", "4"]
    args += ["--batch", "2", "--dose", "0.3", "--ray-workers", "1"]
    at_home = _cli_json(capsys, brood_main, *args, "--out", str(tmp_path / "home"))
    remote = _cli_json(
        capsys, brood_main, *args, "--out", str(tmp_path / "ray"), "--backend", "ray"
    )
    hashes = [c["sha256"] for c in remote["children"]]
    assert hashes == [c["sha256"] for c in at_home["children"]]
    assert len(set(hashes)) == 4
    assert [c["recipe"] for c in remote["children"]] == [c["recipe"] for c in at_home["children"]]


def test_render_on_the_cluster_streams_every_step_and_matches(cluster, capsys, tmp_path):
    args = ["--prompt", "a fox", "--steps", "4", "--seed", "5"]
    at_home = _cli_json(capsys, render_main, *args)
    remote = _cli_json(
        capsys, render_main, *args, "--backend", "ray", "--every-step", str(tmp_path / "steps")
    )
    assert remote["sha256"] == at_home["sha256"]
    assert sorted(p.name for p in (tmp_path / "steps").iterdir()) == [
        f"step_{k:04d}.png" for k in range(1, 5)
    ]


def test_a_cancelled_remote_job_stops_within_one_step(worker):
    client, collector = worker
    cancelled_at = threading.Event()
    seen_at_cancel: list[int] = []

    def cancel_on_third_step(message):
        collector._receive(message)
        if isinstance(message, StepMade) and message.steps_done == 3:
            seen_at_cancel.append(message.step.index)
            client.send(Cancel(1))
            cancelled_at.set()

    client.listen(cancel_on_third_step)
    long_run = RECIPE.with_changes(steps=200)
    client.send(Generate(1, "v", long_run))
    ended = _ended(collector)
    assert isinstance(ended, JobCancelled)
    indices = [m.step.index for m in collector.of(StepMade)]
    # The step running when the Cancel arrived may finish; none starts after it.
    assert ended.steps_done == len(indices) <= seen_at_cancel[0] + 2
    assert ended.steps_done < long_run.steps


def test_a_worker_killed_mid_job_resumes_elsewhere_with_the_exact_result(worker):
    client, collector = worker
    ran_on: list[int | None] = []

    def note_the_actor(message):
        collector._receive(message)
        if isinstance(message, StepMade) and message.job_id == 1:
            ran_on.append(client.actor_pids().get(1))

    client.listen(note_the_actor)
    client.send(Generate(1, "v", RECIPE))
    deadline = time.monotonic() + 60
    while len(collector.of(StepMade)) < 4:
        assert time.monotonic() < deadline, collector.all()
        time.sleep(0.005)
    killed = client.actor_pids()[1]
    os.kill(killed, signal.SIGKILL)
    ended = _ended(collector, timeout=120)
    assert isinstance(ended, JobFinished), ended
    steps = collector.of(StepMade)
    indices = [m.step.index for m in steps]
    # Carried on from the last step that arrived: every step once, in order, one JobStarted.
    assert indices == list(range(RECIPE.steps))
    assert [m.steps_done for m in steps] == list(range(1, RECIPE.steps + 1))
    assert len(collector.of(JobStarted)) == 1
    assert ran_on[0] == killed and ran_on[-1] not in (killed, None)
    client.send(Generate(2, "w", RECIPE))
    uninterrupted = _ended(collector, job_id=2)
    np.testing.assert_array_equal(ended.image, uninterrupted.image)


def test_a_score_job_started_again_after_a_lost_worker_reports_each_row_once():
    # The client's bookkeeping alone (no cluster): what two actors stream for one job.
    client = RayWorker()
    collector = Collector(client)
    request = Score(1, "a fox", tuple(np.zeros((8, 8, 3), np.uint8) for _ in range(3)))
    first = _Actor(handle=None, pid=1, job=_RemoteJob(request))
    client._actors.append(first)

    def progress(done: int) -> ScoreProgress:
        return ScoreProgress(
            1, done, 3, ScoreRow(str(done - 1), 0.5, 0.5, 0.5, (), np.zeros(4, np.float32))
        )

    for done in (1, 2):
        client._on_message(first, progress(done))
    client._lost(first, RuntimeError("the actor died"))
    (job,) = client._waiting
    second = _Actor(handle=None, pid=2, job=client._waiting.popleft())
    client._actors.append(second)
    for done in (1, 2, 3):
        client._on_message(second, progress(done))
    rows = tuple(progress(done).row for done in (1, 2, 3))
    setting = ScoreSetting(request.model, "", 8, 2, 0)
    client._on_message(second, Scored(1, rows, (1.0,) * 3, (0.0,) * 3, 1.0, setting, 48, 1.0))
    assert [m.done for m in collector.of(ScoreProgress)] == [1, 2, 3]
    assert [m.row.key for m in collector.of(ScoreProgress)] == ["0", "1", "2"]
    assert len(collector.of(Scored)) == 1 and job.resumes == 1


def test_an_unreachable_address_is_one_sentence(capsys):
    with pytest.raises(ClusterError) as caught:
        connect("127.0.0.1:1")
    assert str(caught.value).startswith("Cannot reach a Ray cluster at 127.0.0.1:1")
    with pytest.raises(ClusterError, match="looks like HOST:6379"):
        connect("no port here")
    argv = ["--prompt", "a fox", "--backend", "ray", "--ray-address", "127.0.0.1:1"]
    assert render_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Cannot reach a Ray cluster at 127.0.0.1:1")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_switching_models_back_is_announced_though_an_actor_still_holds_it(worker):
    client, collector = worker
    # Two references are two models to a worker, even to the same files (and cheap to load).
    refs = [str(BUNDLED_PATH), "bundled", str(BUNDLED_PATH)]
    for count, ref in enumerate(refs, start=1):
        client.send(LoadModel(ref))
        deadline = time.monotonic() + 60
        while len(collector.of(ModelLoaded)) < count:
            assert time.monotonic() < deadline, collector.all()
            time.sleep(0.02)
    assert [m.ref for m in collector.of(ModelLoaded)] == refs
    assert client.actor_pids() == {} and client.pool_size == 2
