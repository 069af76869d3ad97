"""The data cache: verified downloads that are never half-written, from upstream or a mirror."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sys
import urllib.error
import urllib.request
from pathlib import Path

from bridgeeval.data.registry import Entry, RemoteFile, entry
from bridgeeval.errors import BridgeEvalError
from bridgeeval.files import atomic_target, writable_folder_error, write_text_atomic

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
    if mirror and "://" not in mirror:  # a plain folder: the same files as a file:// mirror
        mirror = Path(mirror).expanduser().resolve().as_uri()
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
    """(ok, reason): present, of the published size and checksum; a file without a published one
    against the checksum recorded when it was downloaded and format-checked. A reason starting
    with "missing" means absent; any other failure is "corrupt: ..."."""
    return verify_path(entry_dir(e, root) / f.name, f.size, f.sha256)


def verify_path(path: Path, size: int | None, sha256: str | None) -> tuple[bool, str]:
    if not path.is_file():
        return False, "missing"
    if size is not None and path.stat().st_size != size:
        return False, f"corrupt: size {path.stat().st_size} != {size}"
    if sha256 is not None:
        return (True, "ok") if sha256_of(path) == sha256 else (False, "corrupt: checksum mismatch")
    recorded = _digest_file(path)
    if not recorded.is_file():
        return False, "corrupt: no checksum recorded (an interrupted download or add); fetch or add it again"
    if sha256_of(path) != recorded.read_text().strip():
        return False, "corrupt: changed since it was checked (checksum differs from the recorded one)"
    return True, "ok (format checked; checksum recorded here, none published)"


def _digest_file(path: Path) -> Path:
    return path.with_name(f".{path.name}.sha256")


def state_of(name: str, root: Path | None = None) -> str:
    """``verified``, ``missing`` (nothing or part cached) or ``corrupt`` (a cached file fails)."""
    status = verify(name, root).values()
    if all(ok for ok, _ in status):
        return "verified"
    if any(not ok and not reason.startswith("missing") for ok, reason in status):
        return "corrupt"
    return "missing"


def verify(name: str, root: Path | None = None) -> dict[str, tuple[bool, str]]:
    e = entry(name)
    if e.manual:
        folder = entry_dir(e, root)
        marker = folder / "ADDED"
        if not marker.is_file():
            return {"(added files)": (False, f"missing: use `bridgeeval data add {name} --from DIR`")}
        names = [line.strip() for line in marker.read_text().splitlines() if line.strip()]
        return {n: verify_path(folder / n, None, None) for n in names} or {"(added files)": (False, "missing")}
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
    with _folder_lock(folder):  # a second fetch of the same data waits, then finds it verified
        for stale in folder.glob(".*.part"):
            stale.unlink(missing_ok=True)  # left by a killed download (no other download runs now)
        fetched = []
        for f in e.files:
            if verify_file(e, f, root)[0]:
                continue
            _download(file_url(e, f, mirror), folder / f.name, f, progress)
            fetched.append(folder / f.name)
        try:
            check_consistency(e, {f.name: folder / f.name for f in e.files}, root)
        except BridgeEvalError:
            for path in fetched:
                path.unlink(missing_ok=True)
                _digest_file(path).unlink(missing_ok=True)
            raise
    return folder


@contextlib.contextmanager
def _folder_lock(folder: Path):
    """An exclusive lock on ``folder/.lock`` for the whole fetch or add (waits for another process)."""
    import fcntl

    with open(folder / ".lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"bridgeeval: waiting for another process fetching into {folder}", file=sys.stderr)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _ensure_writable(folder: Path) -> None:
    err = writable_folder_error(folder)
    if err is not None:
        raise BridgeEvalError(f"cache folder {folder} is not writable ({err.strerror}); set BRIDGEEVAL_DATA")


def download_limit() -> int:
    """Bytes accepted from a file without a published size (``$BRIDGEEVAL_MAX_DOWNLOAD``, default 1 GiB)."""
    return int(os.environ.get("BRIDGEEVAL_MAX_DOWNLOAD", 1 << 30))


def download_timeout() -> float:
    """Seconds without data after which a download is abandoned (``$BRIDGEEVAL_DOWNLOAD_TIMEOUT``)."""
    return float(os.environ.get("BRIDGEEVAL_DOWNLOAD_TIMEOUT", 60))


def _download(url: str, dest: Path, f: RemoteFile, progress: bool) -> None:
    """Streams ``url`` into a ``.part`` file beside ``dest``: renamed onto it only when size,
    checksum (or format) are right, removed otherwise."""
    digest = hashlib.sha256()
    limit = f.size if f.size is not None else download_limit()
    with atomic_target(dest, suffix=".part") as tmp:
        try:
            response = urllib.request.urlopen(url, timeout=download_timeout())
        except (urllib.error.URLError, OSError, ValueError) as err:
            reason = getattr(err, "reason", None) or err
            raise BridgeEvalError(f"cannot download {url}: {reason}") from None
        announced = int(response.headers.get("Content-Length") or 0) or None
        if announced and announced > limit:
            raise BridgeEvalError(f"{url}: the server announces {announced} bytes, more than the {limit} expected")
        received = 0
        with open(tmp, "wb") as out, response, _progress(dest.name, f.size or announced, progress) as advance:
            for block in _blocks(response, url):
                received += len(block)
                if received > limit:
                    raise BridgeEvalError(
                        f"{url}: more than {limit} bytes, the most accepted for this file "
                        "(BRIDGEEVAL_MAX_DOWNLOAD raises it); nothing was kept"
                    )
                _write(out, block, dest)
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
            _record_digest(dest, digest.hexdigest())


def _blocks(response, url: str):
    """The response body in blocks; a stalled or dropped connection is one line."""
    while True:
        try:
            block = response.read(_CHUNK)
        except (TimeoutError, OSError) as err:
            raise BridgeEvalError(
                f"{url}: the download stalled or broke off ({err or 'timed out'}); nothing was kept, fetch again"
            ) from None
        if not block:
            return
        yield block


def _write(out, block: bytes, dest: Path) -> None:
    try:
        out.write(block)
    except OSError as err:
        raise BridgeEvalError(f"{dest.parent}: cannot write {dest.name} ({err.strerror}); nothing was kept") from None


def _record_digest(dest: Path, hexdigest: str) -> None:
    """The checksum of a file that upstream publishes none for, taken when it passed the format check."""
    write_text_atomic(_digest_file(dest), hexdigest + "\n")


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

        read_delimited(path, ",", has_names=True)  # the cached CSVs lead with labels or words
    elif name.endswith(".txt"):
        from bridgeeval.data.wordsim import read_benchmark

        read_benchmark(path)


def add(name: str, source: Path, root: Path | None = None) -> Path:
    """Registers files downloaded by hand: only the files the entry names (or its name patterns),
    each a regular file inside ``source``, format- and shape-checked, then copied atomically."""
    e = entry(name)
    source = Path(source)
    if not source.is_dir():
        raise BridgeEvalError(f"--from {source}: not a folder")
    files = _files_to_add(e, source)
    folder = entry_dir(e, root)
    _ensure_writable(folder)
    for path in files:
        check_format(path, path.name)
        known = next((f for f in e.files if f.name == path.name), None)
        if known and known.sha256 and sha256_of(path) != known.sha256:
            raise BridgeEvalError(f"{path}: SHA-256 does not match the published {known.sha256}")
    check_consistency(e, {p.name: p for p in files}, root)
    with _folder_lock(folder):
        (folder / "ADDED").unlink(missing_ok=True)  # not verified while files are replaced
        for path in files:
            _copy_atomic(path, folder / path.name)
        write_text_atomic(folder / "ADDED", "\n".join(p.name for p in files) + "\n")
    return folder


def _files_to_add(e: Entry, source: Path) -> list[Path]:
    """The entry's files in ``source``; never a symlink that leads out of it, nor anything else."""
    import fnmatch

    if e.files:
        files = [source / f.name for f in e.files]
        missing = [p.name for p in files if not p.is_file()]
        if missing:
            raise BridgeEvalError(f"{source}: missing {', '.join(missing)} for {e.name}")
    else:
        files = sorted(p for p in source.iterdir() if any(fnmatch.fnmatch(p.name.lower(), pat) for pat in e.patterns))
        if not files:
            raise BridgeEvalError(f"{source}: no files for {e.name}; expected names like {', '.join(e.patterns)}")
    inside = source.resolve()
    for path in files:
        if not path.resolve().is_relative_to(inside):
            raise BridgeEvalError(f"{path}: a link to {path.resolve()}, outside {source}; copy the file itself there")
        if not path.resolve().is_file():
            raise BridgeEvalError(f"{path}: not a regular file")
    return files


def _copy_atomic(path: Path, dest: Path) -> None:
    with atomic_target(dest, suffix=".part") as tmp:
        try:
            shutil.copyfile(path, tmp)
        except OSError as err:
            raise BridgeEvalError(f"{dest.parent}: cannot write {dest.name} ({err.strerror}); nothing was kept") from None
        _record_digest(dest, sha256_of(tmp))


def check_consistency(e: Entry, paths: dict[str, Path], root: Path | None = None) -> None:
    """Files that must agree with each other: the rows of a split's image and text files, and an
    entry's vector widths against its reference entry's (``iaprtc_train`` against ``iaprtc``)."""
    csvs = {n: p for n, p in paths.items() if n.endswith(".csv") and p.is_file()}
    if e.widths_of and len(csvs) > 1:
        rows = {n: _csv_shape(p)[0] for n, p in csvs.items()}
        if len(set(rows.values())) > 1:
            listing = ", ".join(f"{n} {r}" for n, r in rows.items())
            raise BridgeEvalError(f"{e.name}: the files are not aligned row by row ({listing} rows)")
    if not e.widths_of:
        return
    ref = entry(e.widths_of)
    if not all(ok for ok, _ in verify(ref.name, root).values()):
        return  # nothing to compare against yet; the test split is checked when it is fetched
    ref_by_role = {f.name.split("_", 1)[1]: entry_dir(ref, root) / f.name for f in ref.files}
    for name, path in csvs.items():
        counterpart = ref_by_role.get(name.split("_", 1)[-1])
        if counterpart is None:
            continue
        got, want = _csv_shape(path)[1], _csv_shape(counterpart)[1]
        if got != want:
            raise BridgeEvalError(
                f"{path}: {got} values per row, but {ref.name}'s {counterpart.name} has {want}; not the same features"
            )


def _csv_shape(path: Path) -> tuple[int, int]:
    """(rows, values per row after the label column) of a label-led CSV, from its text."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        first = handle.readline()
        rows = (1 if first.strip() else 0) + sum(1 for line in handle if line.strip())
    return rows, len(first.split(",")) - 1


def cached_path(name: str, file: str | None = None, root: Path | None = None) -> Path:
    """The verified cached file (or folder) of an entry, or a one-line error saying how to get it."""
    e = entry(name)
    status = verify(name, root)
    if not all(ok for ok, _ in status.values()):
        how = f"bridgeeval data add {name} --from DIR" if e.manual else f"bridgeeval data fetch {name}"
        raise BridgeEvalError(f"data set {name} is not in the cache ({entry_dir(e, root)}); run `{how}`")
    return entry_dir(e, root) / file if file else entry_dir(e, root)
