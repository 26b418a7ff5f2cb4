"""Take the README screenshot: the window mid-generation, with a finished version and a branch.

Re-run this whenever the bundled model or the window changes:

    .venv/bin/python tests/bench/window_screenshot.py [--model REF] [--out resources/docs/window.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from studio_window import ROOT, fill_recipe, model_ref, open_window, wait_for  # type: ignore[import-not-found]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None)
    parser.add_argument("--out", default=str(ROOT / "resources" / "docs" / "window.png"))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--at", type=int, default=14, help="grab when this step (1-based) arrives")
    args = parser.parse_args()
    from studio.protocol import JobFinished, PromptInfo, StepMade

    app, window = open_window(model_ref(args.model))
    window.resize(1280, 800)
    fill_recipe(window, "a red car on a mountain road at sunset", args.steps, args.size, seed=7)
    wait_for(window, JobFinished, window.generate)
    window.branch_from_position(args.steps // 3)
    window.panel.prompt.setPlainText("a red car on a mountain road at night")
    wait_for(window, JobFinished, window.generate)
    window.panel.leave_branch_mode()
    fill_recipe(window, "a yellow balloon on the beach at dawn", args.steps, args.size, seed=21)
    wait_for(window, PromptInfo)  # the token count of the new prompt, as a user would see it
    step = wait_for(window, StepMade, window.generate)
    while step.step.index + 1 < args.at:
        step = wait_for(window, StepMade)
    app.processEvents()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    window.grab().save(str(out))
    print(f"saved {out} at step {step.step.index + 1} / {step.step.total}")
    print(
        "versions:",
        [(v.name, v.recipe.prompt, v.branch_step) for v in window.session.tree.versions()],
    )
    window.close()


if __name__ == "__main__":
    main()
