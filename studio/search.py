"""Early-pruned search: explore wide, keep what did not go wrong early.

A run shows its composition early: x0-hat at a quarter to a third of the steps already
says what the image will be. A :class:`PrunedSearch` runs ``candidates`` seeds of one
recipe to step k (``fraction`` of the run), scores their x0-hat there with the model's
own fidelity and novelty (the Score job), and continues only the best ``keep`` exactly
from their step-k checkpoints, as unchanged branches: each survivor's image is the one
its full run would give, bit for bit. The pruned candidates stay in the project as
partial versions the user can still resume. Qt for signals only; no widgets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from PySide6.QtCore import QObject, Signal

from studio.engine.recipe import MAX_SEED, Recipe
from studio.protocol import JobCancelled, JobFailed, JobFinished, StepMade
from studio.session import Session
from studio.taste import ranking


@dataclass
class SearchReport:
    """What a search cost against running every candidate to the end."""

    candidates: int
    kept: int
    prune_step: int
    steps_run: int = 0
    full_cost: int = 0
    survivors: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)

    @property
    def share_of_full_runs(self) -> float:
        return self.steps_run / self.full_cost if self.full_cost else 0.0


class PrunedSearch(QObject):
    """One search in flight; ``finished(SearchReport)`` once the survivors have run,
    ``failed(reason)`` when it cannot go on or was cancelled (:meth:`cancel`), and
    ``progress(steps_run, steps_planned)`` after each denoising step it paid for."""

    finished = Signal(object)
    failed = Signal(str)
    progress = Signal(int, int)

    def __init__(
        self,
        session: Session,
        recipe: Recipe,
        candidates: int = 32,
        keep: int = 4,
        fraction: float = 0.3,
        explore: float = 0.3,
        score_cost: tuple[int, int] = (4, 1),
    ) -> None:
        """``score_cost`` is (timesteps, noises) of each candidate's score: 4 × 1 is 8 UNet
        evaluations, about half a step's worth of CFG pairs for a 20-step run."""
        super().__init__(session)
        if not 1 <= keep <= candidates:
            raise ValueError("Keep between 1 and the number of candidates.")
        self._session = session
        self._explore = explore
        self.recipes = [
            recipe.with_changes(seed=(recipe.seed + i) % (MAX_SEED + 1), lineage=())
            for i in range(candidates)
        ]
        steps = recipe.steps
        self.prune_step = max(1, min(steps - 1, round(fraction * steps)))
        self.report = SearchReport(candidates, keep, self.prune_step, full_cost=candidates * steps)
        self._keep = keep
        self._score_cost = score_cost
        self._candidate_jobs: dict[int, str] = {}
        self._ended: set[int] = set()
        self._survivor_jobs: dict[int, str] = {}
        self._scoring = False
        self._running = False

    @property
    def planned_steps(self) -> int:
        """The denoising steps the search expects to run: every candidate to step k, the
        survivors on to the end."""
        steps = self.recipes[0].steps
        return len(self.recipes) * self.prune_step + self._keep * (steps - self.prune_step)

    @property
    def candidate_job_ids(self) -> list[int]:
        return list(self._candidate_jobs)

    @property
    def running(self) -> bool:
        return self._running

    def cancel(self) -> None:
        """Stop every job of the search; what ran stays as partial versions (resumable)."""
        if not self._running:
            return
        for job_id in [*self._candidate_jobs, *self._survivor_jobs]:
            if job_id in self._session.jobs:
                self._session.cancel(job_id)
        self._stop("The search was cancelled; its candidates stay as partial versions.")

    def start(self) -> None:
        session = self._session
        session.message_handled.connect(self._on_message)
        session.scores_changed.connect(self._on_scores)
        self._running = True
        for job_id in session.generate_many(self.recipes, stop_after=self.prune_step - 1):
            self._candidate_jobs[job_id] = session.jobs[job_id].version_id

    # ---- the session's messages ------------------------------------------------------

    def _on_message(self, message: object) -> None:
        match message:
            case StepMade() if message.job_id in self._candidate_jobs:
                self._count_step()  # the worker ends each candidate at step k by itself
            case StepMade() if message.job_id in self._survivor_jobs:
                self._count_step()
            case JobCancelled() | JobFinished() | JobFailed() if (
                message.job_id in self._candidate_jobs
            ):
                self._ended.add(message.job_id)
                if len(self._ended) == len(self._candidate_jobs):
                    self._score_candidates()
            case JobFinished() | JobCancelled() | JobFailed() if (
                message.job_id in self._survivor_jobs
            ):
                self._survivor_jobs.pop(message.job_id)
                if not self._survivor_jobs:
                    self._finish()

    def _count_step(self) -> None:
        self.report.steps_run += 1
        self.progress.emit(self.report.steps_run, max(self.planned_steps, self.report.steps_run))

    def _candidates_in_tree(self) -> list[str]:
        tree = self._session.tree
        return [
            vid
            for vid in self._candidate_jobs.values()
            if vid in tree and tree.get(vid).step_indices
        ]

    def _score_candidates(self) -> None:
        versions = self._candidates_in_tree()
        if not versions:
            self._stop("No candidate reached a step that could be ranked.")
            return
        self._scoring = True
        timesteps, noises = self._score_cost
        if not self._session.score(versions, timesteps=timesteps, noises=noises):
            self._stop("The candidates could not be scored.")

    def _on_scores(self) -> None:
        if not self._scoring:
            return
        versions = self._candidates_in_tree()
        scores = self._session.scores
        if any(scores.get(vid) is None for vid in versions):
            return  # more rows to come
        self._scoring = False
        fidelity = [scores.get(vid).fidelity for vid in versions]
        novelty = [scores.get(vid).novelty for vid in versions]
        order = ranking(fidelity, novelty, self._explore)
        best = [versions[i] for i in order[: self._keep]]
        self.report.pruned = [vid for vid in versions if vid not in best]
        for job_id in self._session.resume_many(best):
            if job_id is not None:
                self._survivor_jobs[job_id] = self._session.jobs[job_id].version_id
        if not self._survivor_jobs:
            self._finish()

    def _finish(self) -> None:
        self._disconnect()
        tree = self._session.tree
        self.report.survivors = [
            v.id
            for v in tree.versions()
            if v.parent_id in self._candidate_jobs.values()
            and v.parent_id not in self.report.pruned
        ]
        self.finished.emit(self.report)

    def _stop(self, reason: str) -> None:
        self._disconnect()
        self.failed.emit(reason)

    def _disconnect(self) -> None:
        self._running = False
        session = self._session
        session.message_handled.disconnect(self._on_message)
        session.scores_changed.disconnect(self._on_scores)
