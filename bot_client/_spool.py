"""The local spool: submissions the service could not take yet, one durable file each.

A file appears whole or not at all (temporary file in the same folder, fsync, rename, fsync of the
folder) and is removed only once the service has accepted it. Files hold webhook and interaction
tokens, so the folder is 0700 and every file 0600. Blocking file calls: run them in a thread.

    <spool>/<id>.<hash>.json      waiting to be sent
    <spool>/rejected/...          refused for good (409, 413, 422, or not faithful JSON), with why
    <spool>/corrupt/...           unreadable, or not a spool file at all
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot_client._exceptions import APIError, UnserializableResult, ValidationError

FORMAT_VERSION = 1
KIND = "result_submission"
REJECTED = "rejected"
CORRUPT = "corrupt"
_TMP_PREFIX = ".tmp-"
_STALE_TMP_S = 3600.0  # a temporary file this old belongs to a write that never finished
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


class CorruptSpoolFile(Exception):
    """A file in the spool that is not a readable spool entry."""


@dataclass(frozen=True, slots=True)
class FlushReport:
    """What one ``flush_spool()`` did. Nothing is ever dropped: each file was accepted, set
    aside (``rejected/`` or ``corrupt/``), or is still ``remaining`` for the next flush."""

    accepted: int = 0  # 202: new to the service
    duplicate: int = 0  # 200: the service had it already (a flush interrupted after sending)
    rejected: int = 0  # moved to rejected/
    corrupt: int = 0  # moved to corrupt/
    remaining: int = 0  # still spooled: the service became unreachable, busy or refused the key
    error: str | None = None  # why the flush stopped early

    @property
    def sent(self) -> int:
        return self.accepted + self.duplicate


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(directory: Path, name: str, data: bytes) -> Path:
    """Write ``data`` to ``directory/name`` so that the file appears whole or not at all."""
    tmp = directory / f"{_TMP_PREFIX}{os.getpid()}-{time.time_ns()}-{name}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        target = directory / name
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(directory)
    return target


def _free_name(directory: Path, name: str) -> Path:
    target = directory / name
    if not target.exists():
        return target
    return directory / f"{time.time_ns()}-{name}"


@dataclass(slots=True)
class FlushCounts:
    """A flush in progress, counted; ``report`` makes its ``FlushReport``."""

    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    corrupt: int = 0

    def report(self, *, remaining: int = 0, error: str | None = None) -> FlushReport:
        return FlushReport(
            accepted=self.accepted,
            duplicate=self.duplicate,
            rejected=self.rejected,
            corrupt=self.corrupt,
            remaining=remaining,
            error=error,
        )


def rejection_record(exc: APIError | UnserializableResult) -> dict[str, Any]:
    """Why a spooled submission was set aside in ``rejected/``, as stored next to it."""
    if isinstance(exc, UnserializableResult):
        return {"status_code": None, "code": exc.code, "message": exc.message, "field": exc.field}
    record: dict[str, Any] = {
        "status_code": exc.status_code,
        "code": exc.code,
        "message": exc.message,
    }
    if isinstance(exc, ValidationError):
        record["details"] = [
            {"field": d.field, "code": d.code, "message": d.message} for d in exc.details
        ]
    return record


class Spool:
    """A folder of pending submissions (see the module docstring for the layout)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def __repr__(self) -> str:
        return f"Spool({str(self.directory)!r})"

    def _ensure(self, directory: Path) -> Path:
        if not directory.is_dir():
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        return directory

    @staticmethod
    def file_name(body: dict[str, Any]) -> str:
        """``<workflow id>.<body hash>.json``: the same submission twice is one file, a different
        body under the same id is another (the service decides which one wins)."""
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        digest = hashlib.sha256(canonical.encode()).hexdigest()[:16]
        safe_id = _UNSAFE.sub("_", str(body.get("workflow_id", "unknown")))[:100]
        return f"{safe_id}.{digest}.json"

    def write(self, body: dict[str, Any]) -> Path:
        """Store one submission durably; returns its file."""
        envelope = {
            "version": FORMAT_VERSION,
            "kind": KIND,
            "spooled_at": time.time(),
            "body": body,
        }
        data = json.dumps(envelope, ensure_ascii=False).encode()
        return _write_atomic(self._ensure(self.directory), self.file_name(body), data)

    def pending(self) -> list[Path]:
        """Files waiting to be sent, oldest first. Removes stale temporary files on the way."""
        if not self.directory.is_dir():
            return []
        found: list[tuple[int, str, Path]] = []
        now = time.time()
        for entry in os.scandir(self.directory):
            if not entry.is_file(follow_symlinks=False):
                continue
            stat = entry.stat(follow_symlinks=False)
            if entry.name.startswith(_TMP_PREFIX):
                if now - stat.st_mtime > _STALE_TMP_S:
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
                continue
            found.append((stat.st_mtime_ns, entry.name, Path(entry.path)))
        return [path for _, _, path in sorted(found)]

    def load(self, path: Path) -> dict[str, Any]:
        """The submission body in ``path``; raises ``CorruptSpoolFile`` for anything else."""
        try:
            envelope = json.loads(path.read_bytes())
        except UnicodeDecodeError as exc:
            raise CorruptSpoolFile("not UTF-8 text") from exc
        except (ValueError, RecursionError) as exc:
            raise CorruptSpoolFile(f"not JSON ({exc.__class__.__name__})") from exc
        if not isinstance(envelope, dict) or envelope.get("kind") != KIND:
            raise CorruptSpoolFile("not a result-relay spool file")
        if envelope.get("version") != FORMAT_VERSION:
            raise CorruptSpoolFile(f"unknown spool format version {envelope.get('version')!r}")
        body = envelope.get("body")
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("workflow_id"), str)
            or not isinstance(body.get("results"), dict)
        ):
            raise CorruptSpoolFile("the submission in it has no workflow_id or results")
        return body

    def remove(self, path: Path) -> None:
        """Forget a file the service has accepted."""
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        _fsync_dir(self.directory)

    def reject(self, path: Path, body: dict[str, Any], error: dict[str, Any]) -> Path:
        """Move a refused submission to ``rejected/``, with the service's error beside it."""
        folder = self._ensure(self.directory / REJECTED)
        envelope = {
            "version": FORMAT_VERSION,
            "kind": KIND,
            "body": body,
            "rejection": {**error, "at": time.time()},
        }
        target = _free_name(folder, path.name)
        written = _write_atomic(folder, target.name, json.dumps(envelope).encode())
        self.remove(path)
        return written

    def set_aside(self, path: Path) -> Path:
        """Move an unreadable or foreign file to ``corrupt/`` as it is."""
        folder = self._ensure(self.directory / CORRUPT)
        target = _free_name(folder, path.name)
        os.replace(path, target)
        with contextlib.suppress(OSError):
            os.chmod(target, 0o600)  # it may hold tokens
        _fsync_dir(folder)
        _fsync_dir(self.directory)
        return target
