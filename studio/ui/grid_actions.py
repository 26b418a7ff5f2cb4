"""Seed grids in the window: the Seed grid action, its page and its export.

Receives the session and the widgets it acts through (the panel binding for the
recipe, the pages), never the window's attributes. Cells come from
:func:`studio.engine.grid.grid_cells`, as the CLI's ``grid`` makes them (seeds
fixed across the axes, every cell a plain recipe, so a cell equals its recipe
rendered alone); each is sent through :meth:`Session.generate` and becomes a version.
The export is the CLI's labelled sheet (:func:`studio.engine.grid.grid_sheet`),
written off the UI thread.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDialog, QFileDialog, QMenu, QWidget

from studio.atomic_write import write_atomically
from studio.engine.grid import Axis, Cell, grid_cells, grid_sheet
from studio.engine.recipe import RecipeError
from studio.session import Session
from studio.ui.grid_view import GridDialog, GridView
from studio.ui.pages import Pages
from studio.ui.panel_binding import PanelBinding

GRID_SHORTCUT = "Ctrl+Shift+G"
SHOW_GRID_SHORTCUT = "Ctrl+Alt+G"


class GridActions(QObject):
    """ "Seed grid…" (asks seeds and axes, sends every cell), "Show seed grid" (the last
    grid's page again) and the page's Export image…. ``exported(path, error)`` once an
    export has been written (error "" on success)."""

    exported = Signal(str, str)

    def __init__(
        self, session: Session, binding: PanelBinding, pages: Pages, window: QWidget
    ) -> None:
        super().__init__(window)
        self._session, self._binding, self._pages, self._window = session, binding, pages, window
        self.cells: list[Cell] = []
        self.version_ids: list[str] = []
        self.view = GridView(session.tree)
        pages.add_page(self.view)
        self.grid_action = self._action("Seed grid…", GRID_SHORTCUT, self.ask_and_make)
        self.grid_action.setToolTip(
            "Seeds × one or two axes (CFG, steps, sampler, prompt words, dose), every cell a version"
        )
        self.show_action = self._action("Show seed grid", SHOW_GRID_SHORTCUT, self.show_page)
        self.view.version_clicked.connect(self.open_version)
        self.view.export_requested.connect(self.export)
        self.view.closed.connect(self.close_page)
        self.exported.connect(self._on_exported)

    def _action(self, text: str, shortcut: str, slot: object) -> QAction:
        action = QAction(text, self._window)
        action.setShortcut(QKeySequence(shortcut))
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        action.triggered.connect(lambda: slot())
        self._window.addAction(action)
        return action

    def place_in(self, menu: QMenu, view_menu: QMenu) -> None:
        menu.addAction(self.grid_action)
        view_menu.addAction(self.show_action)

    # ---- making a grid -----------------------------------------------------------------

    def ask_grid(self) -> tuple[list[int], list[Axis]] | None:
        """The user's seeds and axes, or None (tests replace this)."""
        panel = self._binding.panel
        try:
            first = int(panel.seed.text())
        except ValueError:
            first = 1
        dialog = GridDialog(first, self._window)
        return dialog.grid() if dialog.exec() == QDialog.DialogCode.Accepted else None

    def ask_and_make(self) -> list[str]:
        asked = self.ask_grid()
        return [] if asked is None else self.make(*asked)

    def make(self, seeds: Sequence[int], axes: Sequence[Axis]) -> list[str]:
        """Send one job per cell of the panel's recipe over ``seeds`` × ``axes`` and show
        the page; returns the cells' version ids, row by row (none, with a message, when
        the grid cannot run)."""
        session = self._session
        base = self._binding.checked_recipe()
        if base is None:
            return []
        try:
            cells = grid_cells(base, seeds, axes)
            for cell in cells:
                cell.recipe.validate(session.model.size_factor)
        except RecipeError as exc:
            session.status.emit(f"Cannot make the grid: {exc}", 8000)
            return []
        self.cells = cells
        job_ids = session.generate_many([c.recipe for c in cells])
        self.version_ids = [session.jobs[job_id].version_id for job_id in job_ids]
        names = " × ".join(["seed", *(axis.name for axis in axes)])
        self.view.show_grid(
            f"Seed grid · {names} · {len(cells)} cells", self.cells, self.version_ids
        )
        self.show_page()
        session.status.emit(f"Making a grid of {len(cells)} cells…", 5000)
        return self.version_ids

    # ---- the page ------------------------------------------------------------------------

    def show_page(self) -> None:
        self._pages.stack.setCurrentWidget(self.view)

    def close_page(self) -> None:
        if self._pages.stack.currentWidget() is self.view:
            self._pages.stack.setCurrentWidget(self._pages.version_view)

    def open_version(self, version_id: str) -> None:
        """A cell was clicked: its version on view (Show seed grid comes back)."""
        self._session.show_version(version_id)
        self.close_page()

    # ---- export ----------------------------------------------------------------------------

    def ask_export_path(self) -> str | None:
        path, _ = QFileDialog.getSaveFileName(
            self._window, "Export grid", "grid.png", "PNG image (*.png)"
        )
        return path or None

    def export(self) -> bool:
        """Write the grid as one labelled PNG (in the background); False when some cell
        has no final image yet or no path was given."""
        tree = self._session.tree
        images = [tree.result(vid) if vid in tree else None for vid in self.version_ids]
        if not images or any(image is None for image in images):
            self._session.status.emit("Export the grid once every cell has finished.", 6000)
            return False
        path = self.ask_export_path()
        if path is None:
            return False
        sheet = grid_sheet(self.cells, images)

        def write() -> None:
            try:
                write_atomically(Path(path), lambda temp: sheet.save(temp, format="PNG"))
            except OSError as exc:
                self.exported.emit(path, str(exc))
            else:
                self.exported.emit(path, "")

        threading.Thread(target=write, name="grid export", daemon=True).start()
        return True

    def _on_exported(self, path: str, error: str) -> None:
        if error:
            self._session.status.emit(f"Could not write {path}: {error}", 10000)
        else:
            self._session.status.emit(f"Grid exported to {path}.", 8000)
