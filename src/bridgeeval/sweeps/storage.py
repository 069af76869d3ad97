"""One string names an Optuna storage: SQLite (one machine, one sweep process), a journal file
(shared file systems, many workers) or a PostgreSQL server (clusters, many workers).

Paths follow ``file://`` URLs: ``journal:///abs/path.log`` is absolute, ``journal:rel/path.log`` (or
a plain path) is relative to the current folder. SQLite keeps SQLAlchemy's rule:
``sqlite:///rel.db`` is relative, ``sqlite:////abs.db`` absolute. A relative path is resolved once,
by the sweep process, and every job receives the absolute form.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import optuna

from bridgeeval.errors import BridgeEvalError
from bridgeeval.sweeps.settings import FORMS

SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


@dataclass(frozen=True)
class StorageURL:
    """A parsed storage string: ``backend`` is sqlite, journal, postgresql or mysql; ``path`` is the
    absolute file of sqlite and journal storages; ``relative`` says the user wrote a relative path."""

    backend: str
    url: str  # canonical, absolute
    path: Path | None = None
    relative: bool = False

    def __str__(self) -> str:
        return self.url


def parse_url(text: str, base: Path | None = None) -> StorageURL:
    """The storage a string names, its file made absolute against ``base`` (default: the current folder).

    >>> parse_url("journal:///tmp/x/j.log").path.as_posix()
    '/tmp/x/j.log'
    >>> parse_url("journal:runs/j.log", base=Path("/work")).url
    'journal:////work/runs/j.log'
    >>> parse_url("sqlite:///study.db", base=Path("/work")).path.as_posix()
    '/work/study.db'
    >>> parse_url("sqlite:////abs/study.db").relative
    False
    >>> parse_url("outputs/grid.log", base=Path("/w")).backend
    'journal'
    """
    if not isinstance(text, str) or not text.strip():
        raise BridgeEvalError(f"storage: expected {FORMS}, got {text!r}")
    text = text.strip()
    base = Path.cwd() if base is None else base
    if text.startswith("journal:"):
        rest = text[len("journal:") :]
        if rest.startswith("//") and not rest.startswith("///"):
            raise BridgeEvalError(
                f"storage {text!r}: a journal file has no host; write journal:///ABS/PATH or journal:REL/PATH"
            )
        relative = not rest.startswith("/")
        path = Path(rest) if relative else Path("/" + rest.lstrip("/"))
        return _file_storage("journal", path, base, relative)
    if text.startswith("sqlite:///"):
        rest = text[len("sqlite:///") :]
        relative = not rest.startswith("/")
        return _file_storage("sqlite", Path(rest), base, relative)
    if text.startswith(("postgresql://", "postgresql+psycopg2://", "postgresql+psycopg://")):
        return StorageURL("postgresql", text)
    if text.startswith(("mysql://", "mysql+pymysql://")):
        return StorageURL("mysql", text)
    if "://" in text or text.startswith(("sqlite:", "postgresql:")):
        raise BridgeEvalError(f"storage: unknown form {text!r}; expected {FORMS}")
    # A plain path: SQLite by its suffix, else a journal file.
    backend = "sqlite" if text.endswith(SQLITE_SUFFIXES) else "journal"
    return _file_storage(backend, Path(text), base, not Path(text).is_absolute())


def _file_storage(backend: str, path: Path, base: Path, relative: bool) -> StorageURL:
    if str(path) in ("", "."):
        raise BridgeEvalError(f"storage: {backend} needs a file path ({FORMS})")
    path = (base / path.expanduser() if relative else path).resolve()
    url = f"{backend}:///{path}" if backend == "journal" else f"sqlite:///{path}"
    return StorageURL(backend, url, path, relative)


def absolute_url(text: str, base: Path | None = None) -> str:
    """The canonical URL with its file path made absolute, so that jobs started elsewhere find the same file."""
    return parse_url(text, base).url


def open_storage(storage: str | StorageURL) -> optuna.storages.BaseStorage:
    """The Optuna storage a string (or an already parsed URL) names; parent folders of file
    storages are created."""
    where = storage if isinstance(storage, StorageURL) else parse_url(storage)
    check_file_storage(where)
    if where.backend == "journal":
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

        path = str(where.path)
        # Optuna's open-file lock (unlike SQLite's) is safe on NFS-like shared storage.
        try:
            return optuna.storages.JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))
        except ValueError as err:  # a line that is not JSON (Optuna tolerates only a torn last line)
            raise BridgeEvalError(f"{path}, line {_bad_journal_line(path)}: {_journal_problem(err)}") from None
        except OSError as err:  # a folder that exists but takes no new file (read-only, /proc)
            raise BridgeEvalError(f"storage: cannot write {path} ({err.strerror or err}); choose a writable "
                                  "folder, e.g. hydra.sweeper.storage=journal://$HOME/sweeps/study.log") from None
    return _open_rdb(_with_postgres_driver(where.url))


def check_file_storage(where: StorageURL) -> None:
    """A file storage's folder, created if missing, takes new files (the study, its lock); one line
    naming it otherwise."""
    if where.path is None:
        return
    from bridgeeval.files import writable_folder_error

    try:
        where.path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise BridgeEvalError(f"storage: cannot create folder {where.path.parent} ({err.strerror})") from None
    err = writable_folder_error(where.path.parent)
    if err is not None:
        raise BridgeEvalError(f"storage: cannot write in {where.path.parent} ({err.strerror or err}); choose a "
                              "writable folder, e.g. hydra.sweeper.storage=journal://$HOME/sweeps/study.log")


def _bad_journal_line(path: str) -> int | str:
    import json

    with open(path, "rb") as handle:
        lines = handle.read().split(b"\n")
    for number, line in enumerate(lines[:-1], start=1):  # the last, unterminated line may be torn
        try:
            json.loads(line)
        except ValueError:
            return number
    return "?"


def _journal_problem(err: Exception) -> str:
    return (
        f"not a journal record ({type(err).__name__}); the study cannot be read past it. Keep a copy, then "
        "remove that line to read the study again"
    )


def _open_rdb(url: str, attempts: int = 5) -> optuna.storages.RDBStorage:
    """Workers that start together race to create the schema of an empty database (the loser
    gets a duplicate-key error); a retry then finds the tables made."""
    for attempt in range(attempts):
        try:
            # pre-ping drops pooled connections that the server closed between trials
            return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
        except ImportError as err:
            raise BridgeEvalError(f"storage {redact(url)}: database driver missing ({err})") from None
        except Exception as err:  # noqa: BLE001 - SQLAlchemy and drivers raise many types
            if attempt == attempts - 1:
                first = str(err).splitlines()[0]
                raise BridgeEvalError(f"storage {redact(url)}: cannot open ({type(err).__name__}: {first})") from None
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def _with_postgres_driver(url: str) -> str:
    """SQLAlchemy 2.1 maps ``postgresql://`` to psycopg 3; use psycopg2 (a dependency) when that is absent."""
    if not url.startswith("postgresql://"):
        return url
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "postgresql+psycopg2://" + url[len("postgresql://") :]
    return url


def redact(url: str) -> str:
    """The URL without a password, for messages and logs.

    >>> redact("postgresql://me:secret@db:5432/optuna")
    'postgresql://me:***@db:5432/optuna'
    """
    url = str(url)
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}" if ":" in creds else url
    return url
