"""The Score job: from protocol items to scored rows, on the thread that owns torch.

The worker hands a :class:`~studio.protocol.Score` request here with its loaded
model and the job's cancel event; this posts one ScoreProgress per item and then
Scored, or JobCancelled once ``cancel`` is set. Engine errors propagate to the
worker, which reports them as JobFailed like any job's.

Scorer plug-ins the request names (:mod:`studio.engine.plugins`) are checked and
loaded before the first item, so a folder that fails ends the job at once; each
adds a named value to every row. A checkpoint item is decoded by the VAE for them
(they score pixels).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from studio.protocol import (
    JobCancelled,
    PluginScore,
    Score,
    Scored,
    ScoreProgress,
    ScoreRow,
    ScoreSetting,
)


def score_label(request: Score) -> str:
    """What the queue shows for a Score job."""
    count = len(request.items)
    return f"score {count} image{'s' if count != 1 else ''}"


def run_score(
    request: Score,
    model: Any,
    cancel: threading.Event,
    post: Callable[[object], None],
    load_checkpoint: Callable[[bytes], Any],
    between_items: Callable[[], None] = lambda: None,
) -> None:
    """Score every item of ``request`` with ``model``; see the module docstring.

    ``between_items`` runs after each item (the worker serves its decodes there)."""
    from studio.engine.plugins import load_plugins
    from studio.engine.scoring import ScoreCost, ScoreError, Scorer, context_novelty

    began = time.perf_counter()
    cost = ScoreCost(request.timesteps, request.noises, request.seed)
    scorer = Scorer(model, cost)
    plugins = load_plugins(request.plugins, device=getattr(model, "device", "cpu"))
    keys = tuple(request.keys) or tuple(str(i) for i in range(len(request.items)))
    if len(keys) != len(request.items):
        raise ScoreError("A Score request needs one key per item.")
    rows: list[ScoreRow] = []
    evaluations = 0
    for key, item in zip(keys, request.items, strict=True):
        if cancel.is_set():
            break
        if isinstance(item, np.ndarray):
            latent = scorer.encode(item)
        else:
            latent = load_checkpoint(bytes(item)).x0_pred
        result = next(scorer.score([latent], request.prompt, request.alternatives, cancel), None)
        if result is None:
            break
        extra: tuple[PluginScore, ...] = ()
        if plugins:
            pixels = item if isinstance(item, np.ndarray) else _decoded(model, latent)
            extra = tuple(
                PluginScore(plugin.name, plugin.score([pixels], request.prompt)[0])
                for plugin in plugins
            )
        evaluations += result.evaluations
        row = ScoreRow(
            key=key,
            fidelity=result.fidelity,
            novelty=result.novelty,
            novelty_unconditional=result.novelty_unconditional,
            alternative_fidelities=result.alternative_fidelities,
            features=result.features,
            plugin_scores=extra,
        )
        rows.append(row)
        post(ScoreProgress(request.job_id, len(rows), len(request.items), row))
        between_items()
    if cancel.is_set() or len(rows) < len(request.items):
        post(JobCancelled(request.job_id, request.version_id, len(rows)))
        return
    context = context_novelty([row.features for row in rows])
    setting = ScoreSetting(
        model=request.model,
        model_hash=str(getattr(model, "model_hash", "")),
        timesteps=cost.timesteps,
        noises=cost.noises,
        seed=cost.seed,
    )
    post(
        Scored(
            job_id=request.job_id,
            rows=tuple(rows),
            context_novelty=tuple(float(v) for v in context.contributions),
            nearest_distance=tuple(float(v) for v in context.nearest),
            vendi=float(context.vendi),
            setting=setting,
            evaluations=evaluations,
            elapsed=time.perf_counter() - began,
        )
    )


def _decoded(model: Any, latent: Any) -> np.ndarray:
    from studio.engine.preview import decode

    return decode(model.vae, latent)
