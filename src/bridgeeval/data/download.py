"""The data cache: verified downloads that are never half-written, from upstream or a mirror."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from bridgeeval.data.registry import Entry, RemoteFile, entry
from bridgeeval.errors import BridgeEvalError

_CHUNK = 1 << 16


def cache_dir() -> Path:
    """``$BRIDGEEVAL_DATA``, else the user's cache folder."""
    env = os.environ.get("BRIDGEEVAL_DATA")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("bridgeeval"))


def entry_dir(e: Entry, root: Path | None = None) -> Path:
    return (root or cache_dir()) / e.name


def file_url(e: Entry, f: RemoteFile, mirror: str | None) -> str:
    mirror = mirror or os.environ.get("BRIDGEEVAL_MIRROR")
    if mirror:
        return f"{mirror.rstrip('/')}/{e.mirror_dir}/{f.name}"
    return e.base_url + f.name


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_file(e: Entry, f: RemoteFile, root: Path | None = None) -> tuple[bool, str]:
    """(ok, reason): present, of the published size and checksum (or, without one, readable)."""
    path = entry_dir(e, root) / f.name
    if not path.is_file():
        return False, "missing"
    if f.size is not None and path.stat().st_size != f.size:
        return False, f"size {path.stat().st_size} != {f.size}"
    if f.sha256 is not None and sha256_of(path) != f.sha256:
        return False, "checksum mismatch"
    return True, "ok" if f.sha256 else "ok (format checked; no published checksum)"


def verify(name: str, root: Path | None = None) -> dict[str, tuple[bool, str]]:
    e = entry(name)
    if e.manual:
        marker = entry_dir(e, root) / "ADDED"
        return {"(added files)": (marker.is_file(), "ok" if marker.is_file() else "missing: use `bridgeeval data add`")}
    return {f.name: verify_file(e, f, root) for f in e.files}


def fetch(name: str, mirror: str | None = None, root: Path | None = None, progress: bool = True) -> Path:
    """Downloads every file of an entry that is not already verified; returns the entry's folder."""
    e = entry(name)
    if e.manual:
        raise BridgeEvalError(
            f"{name}: no download; get the files by hand, then `bridgeeval data add {name} --from DIR`"
        )
    folder = entry_dir(e, root)
    _ensure_writable(folder)
    for stale in folder.glob(".*.part"):
        stale.unlink(missing_ok=True)  # left by a killed download
    for f in e.files:
        if verify_file(e, f, root)[0]:
            continue
        _download(file_url(e, f, mirror), folder / f.name, f, progress)
    return folder


def _ensure_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-", delete=True):
            pass
    except OSError as err:
        raise BridgeEvalError(f"cache folder {folder} is not writable ({err.strerror}); set BRIDGEEVAL_DATA") from None


def _download(url: str, dest: Path, f: RemoteFile, progress: bool) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    try:
        try:
            response = urllib.request.urlopen(url, timeout=60)
        except (urllib.error.URLError, OSError, ValueError) as err:
            reason = getattr(err, "reason", None) or err
            raise BridgeEvalError(f"cannot download {url}: {reason}") from None
        total = f.size or int(response.headers.get("Content-Length") or 0) or None
        with os.fdopen(fd, "wb") as out, response, _progress(dest.name, total, progress) as advance:
            for block in iter(lambda: response.read(_CHUNK), b""):
                out.write(block)
                digest.update(block)
                advance(len(block))
            out.flush()
            os.fsync(out.fileno())
        size = tmp.stat().st_size
        if f.size is not None and size != f.size:
            raise BridgeEvalError(f"{url}: got {size} bytes, expected {f.size}; nothing was kept")
        if f.sha256 is not None and digest.hexdigest() != f.sha256:
            raise BridgeEvalError(f"{url}: SHA-256 {digest.hexdigest()} does not match {f.sha256}; nothing was kept")
        if f.sha256 is None:
            check_format(tmp, dest.name)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


class _progress:
    """A rich progress bar over bytes (silent when disabled or not a terminal)."""

    def __init__(self, label: str, total: int | None, enabled: bool):
        self.label, self.total, self.enabled = label, total, enabled

    def __enter__(self):
        import sys

        if not (self.enabled and sys.stderr.isatty()):
            return lambda n: None
        from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

        self.bar = Progress("[bold]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn())
        self.bar.start()
        task = self.bar.add_task(self.label, total=self.total)
        return lambda n: self.bar.advance(task, n)

    def __exit__(self, *exc):
        if hasattr(self, "bar"):
            self.bar.stop()


def check_format(path: Path, name: str) -> None:
    """Reads the file as the loaders will, so that a malformed file is refused with its line."""
    if name.endswith(".csv"):
        from bridgeeval.data.formats import read_delimited

        read_delimited(path, ",", has_names=None)
    elif name.endswith(".txt"):
        from bridgeeval.data.wordsim import read_benchmark

        read_benchmark(path)


def add(name: str, source: Path, root: Path | None = None) -> Path:
    """Registers files downloaded by hand: each is checked for format, then copied atomically."""
    e = entry(name)
    source = Path(source)
    if not source.is_dir():
        raise BridgeEvalError(f"--from {source}: not a folder")
    folder = entry_dir(e, root)
    _ensure_writable(folder)
    files = [source / f.name for f in e.files] if e.files else sorted(p for p in source.iterdir() if p.is_file())
    missing = [p.name for p in files if not p.is_file()]
    if missing:
        raise BridgeEvalError(f"{source}: missing {', '.join(missing)} for {name}")
    if not files:
        raise BridgeEvalError(f"{source}: no files to add")
    for path in files:
        check_format(path, path.name)
        known = next((f for f in e.files if f.name == path.name), None)
        if known and known.sha256 and sha256_of(path) != known.sha256:
            raise BridgeEvalError(f"{path}: SHA-256 does not match the published {known.sha256}")
    for path in files:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=folder)
        os.close(fd)
        try:
            shutil.copyfile(path, tmp)
            os.replace(tmp, folder / path.name)
        finally:
            Path(tmp).unlink(missing_ok=True)
    (folder / "ADDED").write_text("\n".join(p.name for p in files) + "\n")
    return folder


def cached_path(name: str, file: str | None = None, root: Path | None = None) -> Path:
    """The verified cached file (or folder) of an entry, or a one-line error saying how to get it."""
    e = entry(name)
    status = verify(name, root)
    if not all(ok for ok, _ in status.values()):
        how = f"bridgeeval data add {name} --from DIR" if e.manual else f"bridgeeval data fetch {name}"
        raise BridgeEvalError(f"data set {name} is not in the cache ({entry_dir(e, root)}); run `{how}`")
    return entry_dir(e, root) / file if file else entry_dir(e, root)
