"""The window's own actions and its menu bar: names, shortcuts and menu order, nothing else.

What an action does is wired by :class:`~studio.ui.main_window.MainWindow`;
features bring their own actions and menus, which the window places.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence, QUndoStack
from PySide6.QtWidgets import QDockWidget, QMainWindow, QMenu


class WindowActions:
    """Every action of the window, built once."""

    def __init__(self, window: QMainWindow, undo_stack: QUndoStack) -> None:
        def action(text: str, *keys: str | QKeySequence.StandardKey | Qt.Key) -> QAction:
            made = QAction(text, window)
            if keys:
                made.setShortcuts([QKeySequence(k) for k in keys])
            return made

        self.generate = action("Generate", "Ctrl+Return", "Ctrl+Enter")
        self.generate.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        self.cancel = action("Cancel", Qt.Key.Key_Escape)
        self.cancel_all = action("Cancel all jobs")
        self.branch = action("Branch from this step", "Ctrl+B")
        self.leave_branch = action("Leave branch mode")
        self.use_settings = action("Use these settings", "Ctrl+Shift+U")
        self.resume = action("Resume stopped version", "Ctrl+Shift+R")
        self.undo = undo_stack.createUndoAction(window, "Undo")
        self.undo.setShortcut(QKeySequence.StandardKey.Undo)
        self.redo = undo_stack.createRedoAction(window, "Redo")
        self.redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        self.rename = action("Rename version", Qt.Key.Key_F2)
        self.delete = action("Delete version")
        self.compare = action("Compare selected versions")
        self.fit = action("Fit to window", "Ctrl+0")
        self.zoom_in = action("Zoom in", "Ctrl++", "Ctrl+=")
        self.zoom_out = action("Zoom out", "Ctrl+-")
        self.actual_size = action("Actual pixels", "Ctrl+1")
        self.static = action("Show static (x_t)", "Ctrl+T")
        self.static.setCheckable(True)
        self.crisp = action("Crisp pixels", "Ctrl+Shift+P")
        self.crisp.setCheckable(True)
        self.crisp.setToolTip("Show pixels as sharp squares when zoomed in (nearest neighbour)")
        self.add_models = action("Add model folder…")
        self.quit = action("Quit", QKeySequence.StandardKey.Quit)
        for shortcut_action in (
            self.generate,
            self.cancel,
            self.branch,
            self.undo,
            self.redo,
            self.fit,
            self.zoom_in,
            self.zoom_out,
            self.actual_size,
            self.static,
            self.crisp,
            self.use_settings,
            self.resume,
            self.quit,
        ):
            window.addAction(shortcut_action)

    def build_menus(self, window: QMainWindow, docks: list[QDockWidget]) -> dict[str, QMenu]:
        """File, Edit, View and Generate; features insert their menus among these."""
        bar = window.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addAction(self.add_models)
        file_menu.addSeparator()
        file_menu.addAction(self.quit)
        edit = bar.addMenu("&Edit")
        for item in (self.undo, self.redo, None, self.rename, self.delete):
            edit.addSeparator() if item is None else edit.addAction(item)
        view = bar.addMenu("&View")
        for item in (self.fit, self.zoom_in, self.zoom_out, self.actual_size, None):
            view.addSeparator() if item is None else view.addAction(item)
        view.addAction(self.static)
        view.addAction(self.crisp)
        view.addAction(self.compare)
        view.addSeparator()
        for dock in docks:
            view.addAction(dock.toggleViewAction())
        generate = bar.addMenu("&Generate")
        for item in (self.generate, self.cancel, self.cancel_all, None, self.branch):
            generate.addSeparator() if item is None else generate.addAction(item)
        generate.addAction(self.leave_branch)
        generate.addSeparator()
        generate.addAction(self.use_settings)
        generate.addAction(self.resume)
        return {"file": file_menu, "edit": edit, "view": view, "generate": generate}
