"""Take the README's brood screenshot: a second generation bred from two picks, mid-brood.

Two versions are bred into a brood of 8 at dose 0.5; two children are picked and
bred again, and the window is grabbed while the second generation streams in.

    .venv/bin/python tests/bench/brood_screenshot.py [--model REF] [--out resources/docs/brood.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from studio_window import ROOT, fill_recipe, model_ref, open_window, wait_for  # type: ignore[import-not-found]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None)
    parser.add_argument("--out", default=str(ROOT / "resources" / "docs" / "brood.png"))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--dose", type=float, default=0.5)
    parser.add_argument("--done", type=int, default=5, help="grab when this many children finished")
    args = parser.parse_args()
    from studio.protocol import JobFinished, StepMade

    app, window = open_window(model_ref(args.model))
    window.resize(1280, 800)
    prompt = "a red car on a mountain road at sunset"
    fill_recipe(window, prompt, args.steps, args.size, seed=7)
    wait_for(window, JobFinished, window.generate)
    fill_recipe(window, prompt, args.steps, args.size, seed=21)
    wait_for(window, JobFinished, window.generate)
    first, second = window.session.tree.versions()[:2]
    broods = window.broods
    broods.state.set_dose(args.dose)
    children = broods.breed([first.id, second.id])
    for _ in children:
        wait_for(window, JobFinished)
    broods.state.pick(children[1])
    broods.state.pick(children[6])
    broods.state.set_cursor(6)
    gen2 = broods.breed_from_picked()
    for _ in range(args.done):
        wait_for(window, JobFinished)
    wait_for(window, StepMade)
    for _ in range(args.steps // 2):
        wait_for(window, StepMade)
    broods.state.pick(gen2[2])
    app.processEvents()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    window.grab().save(str(out))
    print(f"saved {out}: generation {broods.state.generation}, {len(gen2)} children")
    window.close()


if __name__ == "__main__":
    main()
