"""The studio app as ``python main.py`` runs it, offscreen, driven by a timer until it is killed.

``python killed_app.py MODEL_DIR SETTINGS_INI LOG SEED`` opens the window on
``MODEL_DIR`` with the project controller, restores untitled work left by the
previous (killed) run, then keeps generating, branching, undoing and redoing.
Every step the project reports as committed (``Project.stored``) is appended
to ``LOG`` as ``S <version id> <index>`` before anything else happens, so the
test knows what the file must hold however the process dies; each action is
logged as ``A <action>``. Prints
``ready <project path>`` once the model is loaded and a project is bound.
The recovery folder comes from ``NOISE_STUDIO_RECOVERY_DIR``.
"""

from __future__ import annotations

import os
import random
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication

from studio.protocol import ModelLoaded
from studio.ui.main_window import MainWindow
from studio.ui.project_menu import Choice, ProjectSession

TICK_MS = 120


def main(model_dir: str, settings_path: str, log_path: str, seed: int) -> int:
    rng = random.Random(seed)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    # one write() per line: a kill loses no line that was logged
    with open(log_path, "a", buffering=1) as log:
        return _run(app, rng, log, model_dir, settings_path)


def _run(app, rng, log, model_dir: str, settings_path: str) -> int:
    settings = QSettings(settings_path, QSettings.Format.IniFormat)
    window = MainWindow(settings=settings, model_ref=model_dir)
    session = window.session
    projects = ProjectSession(session, window, window.settings)
    window.attach_projects(projects)
    projects.ask_restore = lambda entry: Choice.RESTORE
    projects.show_error = lambda text: print(f"error {text}", file=sys.stderr, flush=True)
    followed: list[object] = []

    def on_stored(version_id: str, index: int) -> None:
        if index >= 0:
            log.write(f"S {version_id} {index}\n")

    def follow_project() -> None:
        project = session.project
        if project is not None and project not in followed:
            followed.append(project)
            project.stored.connect(on_stored)

    def act() -> None:
        panel = window.panel
        busy = bool(session.jobs)
        roll = rng.random()
        if busy:
            if roll < 0.03 and session.undo_stack.canUndo():
                log.write("A undo\n")
                session.undo_stack.undo()  # undo the run that is generating
            return
        shown = session.current_version()
        if roll < 0.35 or shown is None:
            panel.leave_branch_mode()
            panel.seed_random.setChecked(False)
            panel.seed.setText(str(rng.randrange(10_000)))
            log.write("A generate\n")
            window.generate()
        elif roll < 0.7 and len(session.trajectory()) > 1:
            window.branch_from_position(rng.randrange(len(session.trajectory()) - 1))
            log.write("A branch\n")
            window.generate()
        elif roll < 0.9 and session.undo_stack.canUndo():
            log.write("A undo\n")
            session.undo_stack.undo()
        elif session.undo_stack.canRedo():
            log.write("A redo\n")
            session.undo_stack.redo()

    driver = QTimer(window)
    driver.setInterval(TICK_MS)
    driver.timeout.connect(act)

    def on_message(message: object) -> None:
        if isinstance(message, ModelLoaded) and not driver.isActive():
            projects.start()
            follow_project()
            panel = window.panel
            panel.prompt.setPlainText("a red fox in the snow")
            panel.steps.setValue(6)
            panel.width_box.setValue(32)
            panel.height_box.setValue(32)
            print(f"ready {session.project.path}", flush=True)
            driver.start()

    projects.project_changed.connect(follow_project)
    session.message_handled.connect(on_message)
    window.show()
    window.start_worker()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
