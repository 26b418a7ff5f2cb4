"""What the Ray backend costs and what it buys, measured side by side in one run.

    OMP_NUM_THREADS=1 python tests/bench/ray_overhead.py [--steps 20] [--children 32]

1. Per-step overhead: the same recipe on the in-process worker and on a Ray actor
   (a local cluster, one worker), interleaved A B B A …, each after a warm-up job;
   the time per step is the median gap between consecutive steps reaching the
   client, and the overhead compares the medians over the repeats. The CPU time per
   step (this process, plus the actor's process for Ray; the job's end included)
   says what the Ray path costs whatever else the machine runs.
2. Brood throughput: 32 children (one job each) on 1 and on 2 CPU actors (one torch
   thread each), and on the in-process worker for reference, with the actors
   started and their model loaded before the clock starts.

Every worker uses one torch thread, so all of them compute the same pixels; the
script checks that the children's images agree across the runs.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import statistics
import threading
import time

os.environ.setdefault("NOISE_STUDIO_TORCH_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from studio.engine.breeding import brood
from studio.engine.recipe import Recipe
from studio.protocol import Generate, JobFinished, Message, StepMade
from studio.workers.client import WorkerClient
from studio.workers.local import LocalWorker


class Clock:
    """Arrival times of steps and ends, per job."""

    def __init__(self, client: WorkerClient) -> None:
        self._cond = threading.Condition()
        self.steps: dict[int, list[float]] = {}
        self.images: dict[int, bytes] = {}
        self.errors: list[str] = []
        client.listen(self._on)

    def _on(self, message: Message) -> None:
        now = time.perf_counter()
        with self._cond:
            if isinstance(message, StepMade):
                self.steps.setdefault(message.job_id, []).append(now)
            elif isinstance(message, JobFinished):
                self.images[message.job_id] = message.image.tobytes()
                self._cond.notify_all()
            elif hasattr(message, "error"):
                self.errors.append(f"{type(message).__name__}: {message.error}")
                self._cond.notify_all()

    def wait(self, job_ids: list[int]) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self.errors or all(j in self.images for j in job_ids), 3600)
            if self.errors:
                raise SystemExit(self.errors[0])


_ids = iter(range(1, 1_000_000))


def run_jobs(client: WorkerClient, clock: Clock, recipes: list[Recipe]) -> tuple[float, list[int]]:
    began = time.perf_counter()
    ids = [next(_ids) for _ in recipes]
    for job_id, recipe in zip(ids, recipes, strict=True):
        client.send(Generate(job_id, f"v{job_id}", recipe))
    clock.wait(ids)
    return time.perf_counter() - began, ids


def cpu_seconds(pids: list[int]) -> float:
    """CPU time (user + system) used so far by this process and the processes ``pids``."""
    mine = os.times()
    total = mine.user + mine.system
    for pid in pids:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def seconds_per_step(clock: Clock, job_id: int) -> float:
    times = clock.steps[job_id]
    return statistics.median(b - a for a, b in itertools.pairwise(times))


def started(client: WorkerClient, warm_up: list[Recipe]) -> tuple[WorkerClient, Clock]:
    clock = Clock(client)
    client.start()
    run_jobs(client, clock, warm_up)
    return client, clock


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--children", type=int, default=32)
    parser.add_argument("--child-steps", type=int, default=10)
    parser.add_argument("--reps", type=int, default=6)
    args = parser.parse_args()

    import ray

    from studio.workers.ray_client import RayWorker

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    recipe = Recipe("a red circle on grass", seed=7, steps=args.steps, sampler="Euler a")
    base = recipe.with_changes(steps=args.child_steps)
    children = brood(base, ((11, 1.0), (22, 1.0)), args.children, 0.3, 11)

    # 1. per-step overhead, one worker each, alternated
    local, local_clock = started(LocalWorker(), [base])
    remote, remote_clock = started(RayWorker(workers=1), [base])
    sides = {
        "local": (local, local_clock, [], [], []),
        "ray": (remote, remote_clock, [], [], remote.pool_pids()),
    }
    load_before = os.getloadavg()[0]
    for rep in range(args.reps):
        # A B B A …: a load that drifts during the run weighs on both sides alike.
        for name in ("local", "ray") if rep % 2 == 0 else ("ray", "local"):
            client, clock, times, cpu, pids = sides[name]
            cpu_before = cpu_seconds(pids)
            _, (job,) = run_jobs(client, clock, [recipe])
            cpu.append((cpu_seconds(pids) - cpu_before) / args.steps)
            times.append(seconds_per_step(clock, job))
    local_times, remote_times = sides["local"][2], sides["ray"][2]
    cpu_local, cpu_ray = statistics.median(sides["local"][3]), statistics.median(sides["ray"][3])
    per_step_local = statistics.median(local_times)
    per_step_ray = statistics.median(remote_times)
    paired = [r / b - 1 for b, r in zip(local_times, remote_times, strict=True)]

    # 2. brood throughput: in-process, 1 actor (the one above), 2 actors
    local_seconds, local_ids = run_jobs(local, local_clock, children)
    one_seconds, one_ids = run_jobs(remote, remote_clock, children)
    local.stop()
    remote.stop()
    two, two_clock = started(RayWorker(workers=2), [base, base.with_changes(seed=8)])
    two_seconds, two_ids = run_jobs(two, two_clock, children)
    two.stop()
    ray.shutdown()

    def digest(clock: Clock, ids: list[int]) -> str:
        return hashlib.sha256(b"".join(clock.images[j] for j in ids)).hexdigest()[:16]

    same = (
        digest(local_clock, local_ids)
        == digest(remote_clock, one_ids)
        == digest(two_clock, two_ids)
    )
    report = {
        "steps": args.steps,
        "per_step_ms_in_process": round(per_step_local * 1000, 2),
        "per_step_ms_ray": round(per_step_ray * 1000, 2),
        "per_step_overhead_pct": round((per_step_ray / per_step_local - 1) * 100, 1),
        "per_step_overhead_pct_each_pair": [round(p * 100, 1) for p in paired],
        "cpu_ms_per_step_in_process": round(cpu_local * 1000, 2),
        "cpu_ms_per_step_ray_client_and_actor": round(cpu_ray * 1000, 2),
        "cpu_overhead_pct": round((cpu_ray / cpu_local - 1) * 100, 1),
        "per_step_ms_each_in_process": [round(t * 1000, 2) for t in local_times],
        "per_step_ms_each_ray": [round(t * 1000, 2) for t in remote_times],
        "children": args.children,
        "child_steps": args.child_steps,
        "brood_s_in_process": round(local_seconds, 2),
        "brood_s_ray_1_worker": round(one_seconds, 2),
        "brood_s_ray_2_workers": round(two_seconds, 2),
        "children_per_s_ray_1": round(args.children / one_seconds, 2),
        "children_per_s_ray_2": round(args.children / two_seconds, 2),
        "scaling_2_over_1": round(one_seconds / two_seconds, 2),
        "same_pixels_everywhere": same,
        "cpu_count": os.cpu_count(),
        "load_average_1min_before": round(load_before, 2),
        "load_average_1min_after": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
