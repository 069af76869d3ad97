"""One string names an Optuna storage: SQLite (one machine), a journal file (shared file systems)
or a PostgreSQL server (clusters)."""

from __future__ import annotations

import time
from pathlib import Path

import optuna

from bridgeeval.errors import BridgeEvalError

SCHEMES = ("sqlite:///", "journal:///", "postgresql://", "postgresql+psycopg2://", "mysql://")


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """``sqlite:///path/study.db``, ``journal:///path/study.log`` or ``postgresql://user@host:port/db``.

    Relative paths are taken from the current folder; their parent folders are created. Journal
    files use Optuna's open-file lock, which (unlike SQLite) is safe on NFS-like shared storage.
    """
    if not isinstance(url, str) or not url.startswith(SCHEMES):
        raise BridgeEvalError(
            f"storage: expected sqlite:///PATH, journal:///PATH or postgresql://USER@HOST:PORT/DB, got {url!r}"
        )
    if url.startswith("journal:///"):
        path = _local_path(url, "journal:///")
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

        return optuna.storages.JournalStorage(JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path))))
    if url.startswith("sqlite:///"):
        url = "sqlite:///" + str(_local_path(url, "sqlite:///"))
    url = _with_postgres_driver(url)
    return _open_rdb(url)


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


def _local_path(url: str, prefix: str) -> Path:
    path = Path(url[len(prefix) :]).expanduser().resolve()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise BridgeEvalError(f"storage: cannot create folder {path.parent} ({err.strerror})") from None
    return path


def absolute_url(url: str) -> str:
    """The URL with a file path made absolute, so that jobs started elsewhere find the same file."""
    for prefix in ("journal:///", "sqlite:///"):
        if url.startswith(prefix):
            return prefix + str(_local_path(url, prefix))
    return url


def redact(url: str) -> str:
    """The URL without a password, for messages and logs."""
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}" if ":" in creds else url
    return url
