"""Noise Studio entry point.

``python main.py`` opens the studio window; ``python main.py render …`` runs the
headless CLI over the same engine. Heavy imports (torch, diffusers) stay off the
path that shows the window.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "render":
        from studio.cli import main as cli_main

        return cli_main(args[1:])
    from studio.app import main as app_main

    return app_main(args)


if __name__ == "__main__":
    sys.exit(main())
