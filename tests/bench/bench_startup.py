"""How long `python main.py` takes to put the window on screen.

Measures wall time from launching the process to the window's first paint
(the app prints a line when NOISE_STUDIO_STARTUP_PROBE is set, then quits).
Uses the display in $DISPLAY (e.g. Xvfb) if there is one, else offscreen.

    .venv/bin/python tests/bench/bench_startup.py [--runs 5] [--model REF]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def one_run(model: str) -> float:
    env = dict(os.environ, NOISE_STUDIO_STARTUP_PROBE="quit")
    if not env.get("DISPLAY"):
        env["QT_QPA_PLATFORM"] = "offscreen"
    began = time.time()
    proc = subprocess.Popen(
        [sys.executable, "main.py", "--model", model],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    painted = None
    for line in proc.stdout:
        if line.startswith("window-painted "):
            painted = float(line.split()[1])
            break
    proc.wait(timeout=120)
    if painted is None:
        raise RuntimeError("the window never reported its first paint")
    return painted - began


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--model", default="bundled")
    args = parser.parse_args()
    platform = "X11 " + os.environ["DISPLAY"] if os.environ.get("DISPLAY") else "offscreen"
    times = [one_run(args.model) for _ in range(args.runs)]
    print(f"platform: {platform}; runs: {args.runs}")
    print("window visible after (s): " + ", ".join(f"{t:.3f}" for t in times))
    print(f"median {statistics.median(times):.3f} s, max {max(times):.3f} s (target 1.5 s)")


if __name__ == "__main__":
    main()
