"""Start the studio window: a Qt application on a qasync event loop.

Start-up must stay light: this module and everything it imports at module level
(studio.ui, studio.session, studio.document, studio.workers) never import torch or diffusers.
The worker thread imports them while the window is already on screen.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from importlib.resources import files

from studio.engine.recipe import BUNDLED_MODEL

# Set by tests/bench/bench_startup.py: print when the window has first been painted, then quit.
STARTUP_PROBE_ENV = "NOISE_STUDIO_STARTUP_PROBE"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="noise-studio", description="Open the Noise Studio window."
    )
    parser.add_argument(
        "project",
        nargs="?",
        metavar="PROJECT",
        help="a .studio project file to open (as a double-click in the file manager does)",
    )
    parser.add_argument(
        "--install-desktop-entry",
        action="store_true",
        help="register Noise Studio with the Linux desktop (launcher, icon, *.studio files) "
        "under $XDG_DATA_HOME (default ~/.local/share), then exit",
    )
    parser.add_argument(
        "--model",
        default=BUNDLED_MODEL,
        help="model to load: 'bundled', a diffusers folder or a .safetensors file",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """``noise-studio [PROJECT]``: the window (opening PROJECT, a ``.studio`` file), a CLI
    subcommand (``render``, ``info``, …) when one is named, or ``--install-desktop-entry``."""
    argv = sys.argv[1:] if argv is None else argv
    from studio.cli import COMMANDS, run_command  # stdlib only at import: start-up stays light

    if argv and argv[0] in COMMANDS:
        return run_command(argv)
    args = parse_args(argv)
    if args.install_desktop_entry:
        from studio.desktop import main as install_desktop_entry

        return install_desktop_entry()
    import qasync
    from PySide6.QtCore import QEvent, QObject, QTimer
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from studio.ui.main_window import MainWindow
    from studio.ui.project_menu import ProjectSession

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Noise Studio")
    app.setOrganizationName("Noise Studio")
    app.setDesktopFileName("noise-studio")  # the installed launcher: its icon on Wayland
    app.setWindowIcon(QIcon(str(files("studio") / "resources" / "desktop" / "noise-studio.png")))
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    closed = asyncio.Event()
    app.aboutToQuit.connect(closed.set)

    window = MainWindow(model_ref=args.model)
    session = ProjectSession(window.session, window, window.settings)
    window.attach_projects(session)
    probe = os.environ.get(STARTUP_PROBE_ENV)
    started = False

    def start_background_work() -> None:
        # After the first paint: the worker's torch import and the project file must not
        # delay the window. Untitled work left by a crash is offered back (never to a probe).
        nonlocal started
        if started:
            return
        started = True
        window.start_worker()
        session.start(offer_restore=not probe, project=args.project)

    class FirstPaint(QObject):
        def eventFilter(self, watched: QObject, event: QEvent) -> bool:
            if event.type() == QEvent.Type.Paint and watched is window:
                window.removeEventFilter(self)
                if probe:
                    print(f"window-painted {time.time():.6f}", flush=True)
                    if probe == "quit":
                        QTimer.singleShot(0, window.close)
                QTimer.singleShot(0, start_background_work)
            return False

    first_paint = FirstPaint(window)
    window.installEventFilter(first_paint)
    window.show()
    QTimer.singleShot(1000, start_background_work)  # in case no paint comes (e.g. minimised)
    with loop:
        loop.run_until_complete(closed.wait())
    session.shutdown()  # the project file is closed: every committed edit is on disk
    if window.session.client.is_running:
        # One call the worker cannot interrupt (a model load) outlived the window's wait.
        # Tearing the interpreter down under a running native thread aborts the process
        # ("terminate called without an active exception"), so leave without teardown.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
