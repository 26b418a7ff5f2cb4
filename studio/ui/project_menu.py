"""The window's project file: File menu (New, Open, Open Recent, Save As, Close), title, recovery.

The session keeps one VersionTree, one LayerStack and one QUndoStack for its
whole life. Opening or starting a project empties them and fills them from the
file, so every panel that follows them stays connected. A :class:`Project`
binds them to the open file and writes each change as it happens: there is no
"Save", only "Save As", and the title needs no modified marker.

Opening is all or nothing: the file is checked read-only, then read into
versions and layers that no panel sees yet; only when all of that succeeded is
the current project closed and the document replaced. Anything that fails
before then (MemoryError included) leaves the current project open and bound,
says so in one sentence, and closes what was opened. A file another instance
holds is offered as a copy; a file whose ``-wal`` belongs to another database
is offered without it.

Untitled work is a real project in the recovery folder, locked by this
process. On launch, untitled projects left by a crash are offered back.
Leaving untitled work that holds anything (closing the window, New, Open)
asks Save / Discard / Cancel, so nothing is lost silently; empty untitled
projects are removed without asking.
"""

from __future__ import annotations

import contextlib
import enum
import os
import time
from pathlib import Path

from PySide6.QtCore import (
    QEvent,
    QMimeData,
    QObject,
    QSettings,
    QStandardPaths,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QAction, QCloseEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QMainWindow,
    QMenu,
    QMessageBox,
    QWidget,
)

from studio.document.project import OpenedDocument, Project
from studio.document.recovery import (
    RecoverableProject,
    RecoveryLock,
    claim,
    copy_to_untitled,
    create_untitled,
    discard,
    recoverable_projects,
)
from studio.document.store import (
    SUFFIX,
    ProjectError,
    ProjectErrorReason,
    ProjectStore,
    check_project_file,
    set_journal_aside,
)
from studio.engine.recipe import MAX_PROMPT_CHARS
from studio.session import Session

APP_TITLE = "Noise Studio"
UNTITLED = "Untitled"
RECENT_KEY = "projects/recent"
OPEN_KEY = "projects/open"
"""The named project this instance has open, with its pid: left behind by a crash."""
RECENT_MAX = 8
PROJECT_FILTER = f"Noise Studio projects (*{SUFFIX})"


class Choice(enum.Enum):
    """An answer to one of the session's questions."""

    RESTORE = "restore"
    SAVE = "save"
    DISCARD = "discard"
    LATER = "later"
    CANCEL = "cancel"
    COPY = "copy"


def file_menu(window: QMainWindow) -> QMenu:
    """The window's File menu, found by its title (features do not add to it; the window does)."""
    for action in window.menuBar().actions():
        menu = action.menu()
        if menu is not None and action.text().replace("&", "") == "File":
            return menu
    raise LookupError("The window has no File menu.")


class ProjectSession(QObject):
    """Binds the session's document (tree, layers, undo stack) to one project file at a time.

    It sets ``session.project``, the window's title (on ``parent``), and watches
    ``parent`` for drops of ``.studio`` files and for its close, where it asks
    about untitled work, stops the session's worker and then closes the file, so
    no step arrives after the file is closed. Whoever creates it puts
    :meth:`menu_entries` at the top of the window's File menu (:meth:`place_in`)
    and connects ``work_resumed`` to the prompt panel; the shortcuts of
    :meth:`actions` work on ``parent`` from the start. The ``ask_*`` methods are
    the only places that talk to the user; tests replace them.

    Signals: ``project_changed()`` when another file is bound, or after Save As;
    ``work_resumed(Recipe)`` when a loaded project holds versions: the recipe the
    work stopped at, with the session's model, for the prompt panel to carry on.
    """

    project_changed = Signal()
    work_resumed = Signal(object)  # Recipe

    def __init__(
        self,
        session: Session,
        parent: QWidget,
        settings: QSettings,
        recovery_folder: Path | None = None,
    ) -> None:
        super().__init__(parent)
        self.session = session
        self.parent_widget = parent
        self.settings = settings
        self.lock: RecoveryLock | None = None
        self._folder = recovery_folder
        self._asked_disk_full = False
        self._shut_down = False
        self._build_actions()
        parent.addActions(self.actions())  # the shortcuts work before the menu is placed
        parent.installEventFilter(self)
        parent.setAcceptDrops(True)  # a dropped .studio file opens

    @property
    def project(self) -> Project | None:
        return self.session.project

    # ---- menu -------------------------------------------------------------------

    def _build_actions(self) -> None:
        w = self.parent_widget
        self.new_action = QAction("New", w)
        self.new_action.setShortcut(QKeySequence.StandardKey.New)
        self.open_action = QAction("Open…", w)
        self.open_action.setShortcut(QKeySequence.StandardKey.Open)
        self.recent_menu = QMenu("Open Recent", w)
        self.save_action = QAction("Save", w)
        self.save_action.setShortcut(QKeySequence.StandardKey.Save)
        self.save_action.setToolTip("Work is saved as it happens; untitled work asks for a name")
        self.save_as_action = QAction("Save As…", w)
        self.save_as_action.setShortcut(QKeySequence("Ctrl+Shift+S"))
        self.close_action = QAction("Close", w)
        self.close_action.setShortcut(QKeySequence("Ctrl+W"))
        for action in self.actions():
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        self.new_action.triggered.connect(self.new_project)
        self.open_action.triggered.connect(lambda: self.open_project())
        self.save_action.triggered.connect(self.save)
        self.save_as_action.triggered.connect(lambda: self.save_as())
        self.close_action.triggered.connect(self.close_project)
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)

    def actions(self) -> list[QAction]:
        """The actions with window-wide shortcuts; the window adds them to itself."""
        return [
            self.new_action,
            self.open_action,
            self.save_action,
            self.save_as_action,
            self.close_action,
        ]

    def menu_entries(self) -> list[QAction | QMenu | None]:
        """The File menu's project entries in order; None is a separator."""
        return [
            self.new_action,
            self.open_action,
            self.recent_menu,
            None,
            self.save_action,
            self.save_as_action,
            self.close_action,
            None,
        ]

    def place_in(self, menu: QMenu) -> None:
        """Put :meth:`menu_entries` at the top of ``menu`` (the window's File menu)."""
        first = menu.actions()[0] if menu.actions() else None
        for entry in self.menu_entries():
            if entry is None:
                menu.insertSeparator(first)
            elif isinstance(entry, QMenu):
                menu.insertMenu(first, entry)
            else:
                menu.insertAction(first, entry)

    def recent_projects(self) -> list[str]:
        value = self.settings.value(RECENT_KEY, [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in value or []]

    def _remember(self, path: Path) -> None:
        entries = [str(path), *(p for p in self.recent_projects() if p != str(path))]
        self.settings.setValue(RECENT_KEY, entries[:RECENT_MAX])

    def _forget(self, path: str | Path) -> None:
        entries = [p for p in self.recent_projects() if p != str(path)]
        self.settings.setValue(RECENT_KEY, entries)

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        entries = self.recent_projects()
        for entry in entries:
            action = self.recent_menu.addAction(Path(entry).name)
            action.setToolTip(entry)
            action.setStatusTip(entry)
            action.triggered.connect(lambda _=False, p=entry: self.open_project(p))
        if not entries:
            self.recent_menu.addAction("No recent projects").setEnabled(False)

    # ---- the questions (tests replace these) -------------------------------------------

    def ask_restore(self, entry: RecoverableProject) -> Choice:
        when = time.strftime("%H:%M on %d %b", time.localtime(entry.modified))
        if entry.problem:
            detail = f"It cannot be opened: {entry.problem}"
        else:
            detail = f"It holds {_count(entry.version_count, 'version')} and {_count(entry.layer_count, 'layer')}."
        box = QMessageBox(self.parent_widget)
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle("Restore untitled work")
        box.setText(f"Noise Studio did not close properly. Restore your untitled work from {when}?")
        box.setInformativeText(detail)
        restore = box.addButton("Restore", QMessageBox.ButtonRole.AcceptRole)
        later = box.addButton("Not now", QMessageBox.ButtonRole.RejectRole)
        delete = box.addButton("Discard", QMessageBox.ButtonRole.DestructiveRole)
        restore.setEnabled(entry.problem is None)
        box.setDefaultButton(restore if entry.problem is None else later)
        box.exec()
        clicked = box.clickedButton()
        if clicked is restore:
            return Choice.RESTORE
        if clicked is delete:
            return Choice.DISCARD
        return Choice.LATER

    def ask_keep_untitled(self) -> Choice:
        answer = QMessageBox.question(
            self.parent_widget,
            "Save your untitled project?",
            "Save your untitled project before it is closed? Discarding deletes it.",
            QMessageBox.StandardButton.Save
            | QMessageBox.StandardButton.Discard
            | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Save,
        )
        if answer == QMessageBox.StandardButton.Save:
            return Choice.SAVE
        if answer == QMessageBox.StandardButton.Discard:
            return Choice.DISCARD
        return Choice.CANCEL

    def ask_in_use(self, problem: str) -> Choice:
        """A file another instance holds: work on a copy of it (``COPY``) or leave it (``CANCEL``)."""
        box = QMessageBox(self.parent_widget)
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle("Project in use")
        box.setText(problem)
        box.setInformativeText("Open an untitled copy of it here? The other window keeps the file.")
        copy = box.addButton("Open a Copy", QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(copy)
        box.exec()
        return Choice.COPY if box.clickedButton() is copy else Choice.CANCEL

    def ask_open_without_journal(self, problem: str) -> bool:
        """A ``-wal`` that belongs to another database: set it aside and open the file as it is?"""
        answer = QMessageBox.question(
            self.parent_widget,
            "Journal file does not belong",
            f"{problem}\nOpen the project as it is, setting the journal file aside?",
            QMessageBox.StandardButton.Open | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        return answer == QMessageBox.StandardButton.Open

    def _start_folder(self) -> Path:
        recent = self.recent_projects()
        if recent and Path(recent[0]).parent.is_dir():
            return Path(recent[0]).parent
        return Path(
            QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation)
        )

    def ask_open_path(self) -> str | None:
        path, _ = QFileDialog.getOpenFileName(
            self.parent_widget, "Open project", str(self._start_folder()), PROJECT_FILTER
        )
        return path or None

    def ask_save_path(self) -> str | None:
        if self.project is not None and self.lock is None:
            start = self.project.path
        else:
            start = self._start_folder() / (UNTITLED + SUFFIX)
        path, _ = QFileDialog.getSaveFileName(
            self.parent_widget, "Save project as", str(start), PROJECT_FILTER
        )
        return path or None

    def show_error(self, text: str) -> None:
        self.session.status.emit(text, 10000)
        QMessageBox.warning(self.parent_widget, APP_TITLE, text)

    # ---- starting -----------------------------------------------------------------

    def start(self, offer_restore: bool = True, project: str | Path | None = None) -> None:
        """Open ``project`` (a ``.studio`` named on the command line, e.g. by a double-click);
        without one, or when it cannot be opened (explained in one sentence), offer back
        untitled work left by a crash; otherwise start a new untitled project."""
        if self._shut_down:  # the window was closed before the event loop got here
            return
        if project is not None and self.open_project(Path(project).expanduser().absolute()):
            return
        if offer_restore and self._reopen_after_crash():
            return
        if offer_restore:
            for entry in recoverable_projects(self._folder):
                choice = self.ask_restore(entry)
                if choice is Choice.RESTORE:
                    try:
                        store, lock = claim(entry.path, writing=False)
                    except ProjectError as exc:
                        self.show_error(str(exc))
                        continue
                    if self._switch_to(store, lock):
                        self.session.status.emit("Restored your untitled work.", 8000)
                        return
                elif choice is Choice.DISCARD:
                    with contextlib.suppress(ProjectError):
                        discard(entry.path)
        self._start_untitled()

    def _reopen_after_crash(self) -> bool:
        """The last instance died with a named project open: offer to open it again."""
        value = self.settings.value(OPEN_KEY, "")
        path_text, _, pid_text = str(value or "").rpartition("|")
        if not path_text:
            return False
        if pid_text.isdigit() and _alive(int(pid_text)) and int(pid_text) != os.getpid():
            return False  # another instance has it open now; that is no crash
        self.settings.remove(OPEN_KEY)
        path = Path(path_text)
        if not path.exists() or self.ask_reopen(path) is not Choice.RESTORE:
            return False
        return self.open_project(path)

    def ask_reopen(self, path: Path) -> Choice:
        answer = QMessageBox.question(
            self.parent_widget,
            "Reopen project",
            f"Noise Studio did not close properly while “{path.name}” was open. Reopen it?",
            QMessageBox.StandardButton.Open | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.Open,
        )
        return Choice.RESTORE if answer == QMessageBox.StandardButton.Open else Choice.LATER

    def _mark_open(self) -> None:
        project = self.session.project
        if project is not None and self.lock is None:
            self.settings.setValue(OPEN_KEY, f"{project.path}|{os.getpid()}")
        else:
            self.settings.remove(OPEN_KEY)
        self.settings.sync()

    def _start_untitled(self) -> None:
        try:
            store, lock = create_untitled(self._folder)
        except ProjectError as exc:
            self.show_error(f"{exc} Your work will not be kept.")
            return
        self._bind(store, lock, None)

    # ---- File menu ------------------------------------------------------------------

    def new_project(self) -> bool:
        """Leave the current project (asking about untitled work) and start an untitled one."""
        if not self._leave_current():
            return False
        self._start_untitled()
        return True

    def open_project(self, path: str | Path | None = None) -> bool:
        """Open a ``.studio`` file. A bad file is explained in one sentence and never written."""
        path = path or self.ask_open_path()
        if not path:
            return False
        path = Path(path)
        if self.project is not None and _same_file(path, self.project.path):
            return True
        opened = self._open_checked(path)
        if opened is None:
            return False
        store, copy_lock = opened  # a lock only for an untitled copy made here
        return self._switch_to(store, copy_lock, discard_on_failure=copy_lock is not None)

    def _open_checked(
        self, path: Path, journal_asked: bool = False
    ) -> tuple[ProjectStore, RecoveryLock | None] | None:
        """Check ``path`` read-only and open it for reading; None (said why) if it cannot be."""
        R = ProjectErrorReason
        try:
            check_project_file(path)  # read-only: nothing is closed or written if this fails
            return ProjectStore.open(path, writing=False), None
        except ProjectError as exc:
            if exc.reason is R.FOREIGN_JOURNAL and not journal_asked:
                if not self.ask_open_without_journal(str(exc)):
                    return None
                try:
                    set_journal_aside(path)
                except OSError as os_exc:
                    self.show_error(f"The journal file could not be set aside ({os_exc}).")
                    return None
                return self._open_checked(path, journal_asked=True)
            if exc.reason is R.IN_USE:
                if self.ask_in_use(str(exc)) is not Choice.COPY:
                    return None
                try:
                    return copy_to_untitled(path, self._folder)
                except ProjectError as copy_exc:
                    self.show_error(str(copy_exc))
                    return None
            self.show_error(str(exc))
            if not path.exists():
                self._forget(path)
            return None

    def _switch_to(
        self, store: ProjectStore, lock: RecoveryLock | None, *, discard_on_failure: bool = False
    ) -> bool:
        """Read ``store`` whole, then (only if that worked) replace the current project with it."""
        try:
            document = Project.read(store)
        except Exception as exc:  # a bad file may raise anything, MemoryError included
            self._abandon(store, lock, discard_on_failure)
            self.show_error(_unreadable(store, exc))
            return False
        if not self._confirm_leave():
            self._abandon(store, lock, discard_on_failure)
            return False
        try:
            store.start_writing()
        except ProjectError as exc:
            self._abandon(store, lock, discard_on_failure)
            self.show_error(str(exc))
            return False
        self.session.cancel_all()
        self._close_file()
        self._clear_document()
        return self._bind(store, lock, document)

    def save_as(self, path: str | Path | None = None) -> bool:
        """Copy the project to ``path`` (SQLite backup) and carry on working there."""
        if self.project is None:
            return False
        path = path or self.ask_save_path()
        if not path:
            return False
        path = Path(path)
        if path.suffix != SUFFIX:
            path = path.with_name(path.name + SUFFIX)
        if _same_file(path, self.project.path):
            return True
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            self.project.save_as(path).result()
        except ProjectError as exc:
            self.show_error(str(exc))
            return False
        except OSError as exc:
            self.show_error(f"The project could not be saved as {path.name} ({exc}).")
            return False
        finally:
            QApplication.restoreOverrideCursor()
        if self.lock is not None:  # the untitled copy in the recovery folder is no longer needed
            self.lock.release(remove_project=True)
            self.lock = None
        self._asked_disk_full = False
        self._remember(path)
        self._update_title()
        self._mark_open()
        self.project_changed.emit()
        self.session.status.emit(f"Saved as {path}.", 8000)
        return True

    def save(self) -> bool:
        """Ctrl+S: untitled work asks for a name (Save As); a named project is saved already."""
        if self.project is None:
            return False
        if self.lock is not None:
            return self.save_as()
        self.session.status.emit(
            f"{self.project.name} is saved: every change is written as it happens.", 6000
        )
        return True

    def close_project(self) -> bool:
        """Close the project; the window carries on with a new untitled one."""
        return self.new_project()

    # ---- binding ----------------------------------------------------------------------

    def _bind(
        self, store: ProjectStore, lock: RecoveryLock | None, document: OpenedDocument | None
    ) -> bool:
        """Bind an empty document to ``store``, filled with ``document`` (checked and read already)."""
        session = self.session
        try:
            if document is not None:
                project = Project.bind(
                    store, document, tree=session.tree, layers=session.layers, mask=session.mask
                )
            else:
                project = Project(store, session.tree, session.layers, mask=session.mask)
        except Exception as exc:  # not expected after Project.read; never leave a document unbound
            self._abandon(store, lock, remove=False)
            self._clear_document()
            self.show_error(_unreadable(store, exc))
            self._start_untitled()
            return False
        session.project, self.lock = project, lock
        project.write_failed.connect(self._on_write_failed)
        project.image_unreadable.connect(self._on_image_unreadable)
        versions = session.tree.versions()
        session.show_version(versions[-1].id if versions else None)
        if versions:
            # carry on where the work stopped, with the model the session has loaded
            self.work_resumed.emit(versions[-1].recipe.with_changes(model=session.model.ref))
        if lock is None:
            self._remember(store.path)
        self._asked_disk_full = False
        self._update_title()
        self._mark_open()
        self.project_changed.emit()
        if document is not None and document.cut_prompts:
            self.session.status.emit(
                f"{_count(document.cut_prompts, 'recipe')} had a prompt over "
                f"{MAX_PROMPT_CHARS:,} characters; it was cut to that length.",
                15000,
            )
        if document is not None and document.unreadable_thumbnails:
            self._on_image_unreadable(
                f"{_count(document.unreadable_thumbnails, 'stored image')} could not be read;"
                " grey placeholders are shown."
            )
        return True

    def _abandon(self, store: ProjectStore, lock: RecoveryLock | None, remove: bool) -> None:
        """Close a store that was opened but not bound (``remove``: it was a copy made for it)."""
        store.close()
        if lock is not None:
            lock.release(remove_project=remove)

    def has_content(self) -> bool:
        return len(self.session.tree) > 0 or len(self.session.layers) > 0

    def _leave_current(self) -> bool:
        """Ask about untitled work, then close the file and empty the document. False: cancelled."""
        if not self._confirm_leave():
            return False
        self.session.cancel_all()
        self._close_file()
        self._clear_document()
        return True

    def _confirm_leave(self) -> bool:
        if self.project is None or self.lock is None or not self.has_content():
            return True
        choice = self.ask_keep_untitled()
        if choice is Choice.CANCEL:
            return False
        if choice is Choice.SAVE:
            return self.save_as()
        return True

    def _close_file(self) -> None:
        project, lock = self.session.project, self.lock
        self.session.project = self.lock = None
        if project is not None:
            project.write_failed.disconnect(self._on_write_failed)
            project.image_unreadable.disconnect(self._on_image_unreadable)
            project.close()
        if lock is not None:  # untitled work the user chose not to keep, or that held nothing
            lock.release(remove_project=True)

    def _clear_document(self) -> None:
        session = self.session
        session.show_version(None)
        session.undo_stack.clear()
        session.tree.clear()
        for layer in reversed(session.layers.layers):
            session.layers.remove(layer.id)
        session.layers.set_size(0, 0)

    def is_untitled(self) -> bool:
        """The work has no name yet: it lives in the recovery folder (or nowhere)."""
        return self.lock is not None or self.project is None

    def _update_title(self) -> None:
        name = UNTITLED if self.is_untitled() else self.project.name
        self.parent_widget.setWindowTitle(f"{name} — {APP_TITLE}")

    # ---- errors and closing ---------------------------------------------------------------

    def _on_image_unreadable(self, message: str) -> None:
        self.session.status.emit(message, 10000)

    def _on_write_failed(self, message: str, reason: str) -> None:
        self.session.status.emit(message, 15000)
        if reason != "disk_full" or self._asked_disk_full:
            return
        self._asked_disk_full = True
        answer = QMessageBox.warning(
            self.parent_widget,
            "Disk full",
            f"{message}\nYour work is still in memory. Save it somewhere else?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Ignore,
            QMessageBox.StandardButton.Save,
        )
        if answer == QMessageBox.StandardButton.Save:
            self.save_as()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.parent_widget and event.type() in _DRAG_EVENTS:
            assert isinstance(event, QDropEvent)  # the base class of all three
            dropped = _project_file(event.mimeData())
            if dropped is not None:
                event.acceptProposedAction()
                if event.type() == QEvent.Type.Drop:
                    # after the drop returns: the drag source must not wait on our dialogs
                    QTimer.singleShot(0, lambda: self.open_project(dropped))
                return True
        if (
            watched is self.parent_widget
            and event.type() == QEvent.Type.Close
            and not self._shut_down
        ):
            assert isinstance(event, QCloseEvent)
            if not self._confirm_leave():
                event.ignore()
                return True
            # The worker stops first, so no step arrives after the file is closed; the
            # window's own closeEvent runs next (stopping the session again is harmless).
            self.session.shutdown()
            self.shutdown()
            return False
        return super().eventFilter(watched, event)

    def shutdown(self) -> None:
        """Close the file (pending writes finish first) and remove untitled work not kept."""
        if self._shut_down:
            return
        self._shut_down = True
        # Nothing on view may read the file after it closes (a timeline timer may still fire).
        self.session.show_version(None)
        self._close_file()
        self.settings.remove(OPEN_KEY)  # a clean close: nothing to offer back next time
        self.settings.sync()


_DRAG_EVENTS = (QEvent.Type.DragEnter, QEvent.Type.DragMove, QEvent.Type.Drop)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _project_file(mime: QMimeData) -> Path | None:
    """The one ``.studio`` file being dragged, if that is what is dragged."""
    if not mime.hasUrls() or len(mime.urls()) != 1 or not mime.urls()[0].isLocalFile():
        return None
    path = Path(mime.urls()[0].toLocalFile())
    return path if path.suffix == SUFFIX else None


def _unreadable(store: ProjectStore, exc: BaseException) -> str:
    if isinstance(exc, MemoryError):
        return f"“{store.path.name}” could not be opened: it needs more memory than is free."
    return f"“{store.path.name}” could not be read ({exc})."


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False
