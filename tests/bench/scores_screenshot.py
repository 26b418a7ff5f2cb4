"""Take the README's scores screenshot: a brood scored, on the novelty x fidelity map.

One version is bred into a brood of 8 at dose 0.6; the brood is scored from the
Scores dock, ordered by the combined score, and the window is grabbed with the
dock beside the brood and the pointer over a point.

    xvfb-run -s "-screen 0 1280x860x24" .venv/bin/python tests/bench/scores_screenshot.py \
        [--model REF] [--out resources/docs/scores.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from studio_window import ROOT, fill_recipe, model_ref, open_window, wait_for  # type: ignore[import-not-found]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None)
    parser.add_argument("--out", default=str(ROOT / "resources" / "docs" / "scores.png"))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--dose", type=float, default=0.6)
    parser.add_argument("--children", type=int, default=8)
    args = parser.parse_args()
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    from studio.protocol import JobFinished, Scored

    app, window = open_window(model_ref(args.model))
    window.resize(1280, 820)
    prompt = "a red car on a mountain road at sunset"
    fill_recipe(window, prompt, args.steps, args.size, seed=7)
    wait_for(window, JobFinished, window.generate)
    parent = window.session.tree.versions()[0]
    broods = window.broods
    broods.state.set_dose(args.dose)
    broods.state.set_size(args.children)
    children = broods.breed([parent.id])
    for _ in children:
        wait_for(window, JobFinished)
    scores = window.scores
    scores.state.set_explore(0.5)
    wait_for(window, Scored, scores.score_these)
    scores.order_brood()
    window.prompt_dock.hide()  # room for the brood's header beside the dock
    window.resizeDocks([scores.dock], [560], Qt.Orientation.Horizontal)
    window.resizeDocks([scores.dock, window.history_dock], [660, 90], Qt.Orientation.Vertical)
    app.processEvents()
    plot = scores.view.plot
    front = plot.front_ids()
    hovered = front[len(front) // 2] if front else plot.shown_ids()[0]
    point = plot.point_positions()[hovered]
    move = QMouseEvent(
        QMouseEvent.Type.MouseMove,
        point,
        plot.mapToGlobal(point),
        Qt.MouseButton.NoButton,
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(plot, move)
    app.processEvents()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    window.grab().save(str(out))
    tree, session = window.session.tree, window.session
    for vid in scores.view.sorted_ids():
        s = session.scores[vid]
        mark = " front" if vid in front else ""
        print(f"{tree.get(vid).name}: fidelity {s.fidelity:.3f} novelty {s.novelty:.3f}{mark}")
    print(f"saved {out}; hovered {tree.get(hovered).name}")
    window.close()


if __name__ == "__main__":
    main()
