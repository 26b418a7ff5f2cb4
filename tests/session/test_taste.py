"""Ranking by taste without torch: the explore/exploit mix, the Pareto front, novelty in context."""

from __future__ import annotations

import numpy as np
import pytest

from studio.taste import (
    combined_scores,
    context_novelty,
    pareto_front,
    percentile_ranks,
    ranking,
    vendi_score,
)

FIDELITY = [0.30, 0.10, 0.20, 0.25]
NOVELTY = [1.00, 4.00, 1.50, 0.90]


def test_the_slider_walks_from_most_faithful_to_most_novel():
    assert ranking(FIDELITY, NOVELTY, 0.0) == [0, 3, 2, 1]
    assert ranking(FIDELITY, NOVELTY, 1.0) == [1, 2, 0, 3]
    middle = combined_scores(FIDELITY, NOVELTY, 0.5)
    assert int(np.argmax(middle)) in (0, 2)
    assert combined_scores(FIDELITY, NOVELTY, 0.5).max() <= 1.0
    with pytest.raises(ValueError):
        combined_scores(FIDELITY, NOVELTY, 1.5)


def test_ranks_resist_outliers_and_share_ties():
    assert percentile_ranks([1.0, 1e9, 2.0]).tolist() == [0.0, 1.0, 0.5]
    assert percentile_ranks([3.0, 3.0, 1.0]).tolist() == [0.75, 0.75, 0.0]
    assert percentile_ranks([7.0]).tolist() == [0.5]


def test_pareto_front_keeps_only_the_unbeaten():
    # 3 is beaten by 0 (more faithful and more novel); the rest trade one axis for the other.
    assert pareto_front(FIDELITY, NOVELTY) == [0, 2, 1]
    assert pareto_front([0.5, 0.5], [1.0, 1.0]) == [0, 1]


def test_context_novelty_rewards_the_odd_one_out():
    rng = np.random.default_rng(0)
    base = rng.normal(size=16)
    features = np.stack([base, base, base + 0.01 * rng.normal(size=16), rng.normal(size=16)])
    context = context_novelty(features)
    assert int(np.argmax(context.contributions)) == 3
    assert context.nearest[0] == pytest.approx(0.0, abs=1e-12)
    assert context.nearest[3] > 0.3
    assert vendi_score(np.stack([base] * 4)) == pytest.approx(1.0)
    assert vendi_score(np.eye(4)) == pytest.approx(4.0)
    single = context_novelty(features[:1])
    assert np.isnan(single.nearest[0]) and single.contributions[0] == 0.0
