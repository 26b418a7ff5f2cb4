"""The ``.studio`` project file (an SQLite database) and the checks made before opening one.

One module per idea:

- :mod:`.project_store`: :class:`ProjectStore`, reading and continuously writing a file
- :mod:`.writer`: the writer thread that owns the read-write connection
- :mod:`.schema`: tables, schema version and the records read from them
- :mod:`.rows`: the SQL that reads records and the small writes edits share
- :mod:`.checks`: read-only checks of a file (:func:`check_project_file`, :func:`peek`)
- :mod:`.connections`: read-write (WAL), read-only and probe connections
- :mod:`.files`: creating a file, Save As copies (backup API), sidecar files
- :mod:`.errors`: :class:`ProjectError` and its :class:`ProjectErrorReason`
"""

from studio.document.store.checks import FULL_CHECK_BYTES, check_project_file, peek
from studio.document.store.errors import ProjectError, ProjectErrorReason
from studio.document.store.files import set_journal_aside
from studio.document.store.project_store import ProjectStore
from studio.document.store.schema import (
    APP_NAME,
    APPLICATION_ID,
    SCHEMA_VERSION,
    SUFFIX,
    LayerRecord,
    ProjectSnapshot,
    ProjectSummary,
    VersionRecord,
)

__all__ = [
    "APPLICATION_ID",
    "APP_NAME",
    "FULL_CHECK_BYTES",
    "SCHEMA_VERSION",
    "SUFFIX",
    "LayerRecord",
    "ProjectError",
    "ProjectErrorReason",
    "ProjectSnapshot",
    "ProjectStore",
    "ProjectSummary",
    "VersionRecord",
    "check_project_file",
    "peek",
    "set_journal_aside",
]
