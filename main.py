"""Noise Studio entry point.

``python main.py`` opens the studio window; ``python main.py render …`` and
``python main.py info IMAGE`` run the headless CLI over the same engine (the
installed ``noise-studio`` command dispatches the same way, in ``studio.app``).
Heavy imports (torch, diffusers) stay off the path that shows the window.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from studio.app import main as app_main

    return app_main(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
