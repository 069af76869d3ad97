"""Files written atomically (a temporary file in the same folder, then a rename), with the mode an
ordinary open() would give. Neutral: every layer (data cache, jobs, reports, CLI) writes through it."""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_target(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path beside ``path`` to write; renamed onto ``path`` only if the block succeeds,
    with the mode an ordinary ``open(path, "w")`` would give, and removed otherwise."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, default_file_mode())  # mkstemp's 0600 would hide results from collaborators
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def writable_folder_error(folder: str | os.PathLike, keep: bool = True) -> OSError | None:
    """Why ``folder`` (created if missing) cannot take a new file, or None: checked by writing one.
    With ``keep=False`` the folders it had to create are removed again (a check before any work
    leaves nothing behind)."""
    folder = Path(folder)
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
            pass
    except OSError as err:
        return err
    finally:
        if not keep:
            for created in missing:  # deepest first
                try:
                    created.rmdir()
                except OSError:
                    break
    return None


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    with atomic_target(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    return Path(path)


def default_file_mode() -> int:
    """0666 less the process umask: what an ordinary ``open(path, "w")`` would have given."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_json_atomic(path: str | os.PathLike, obj) -> Path:
    """Strict JSON (non-finite numbers written as null, listed under ``undefined_keys``)."""
    from bridgeeval.jsonout import dumps

    return write_text_atomic(path, dumps(obj) + "\n")


def write_csv_atomic(path: str | os.PathLike, rows: list[dict]) -> Path:
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    return write_text_atomic(path, buffer.getvalue())
