"""The content-addressed cache of trained models, mean activations and circuits.

An entry is a folder ``ROOT/KIND/KEY/`` holding data files and ``record.json``,
the manifest. KEY is a hash of everything that determines the entry's
contents, so a changed spec simply misses. The manifest lists the SHA-256 of
every file and is written last, through a rename: an entry without a valid
manifest, or whose files do not match it, is corrupt, and is removed and
rebuilt rather than trusted. Writers of one entry take a file lock, so two
runs of the same spec train once. Nothing here unpickles anything: weights
are safetensors and records are JSON.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import attrs

from .cachedir import atomic_write_bytes, atomic_write_text, cache_root

MANIFEST = "record.json"
KINDS = ("models", "circuits")


def content_key(data: Any) -> str:
    """A short stable hash of JSON-ready data (dict order does not matter)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (tuple, set, frozenset)):
        return list(obj)
    raise TypeError(f"cannot hash {type(obj).__name__}")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@attrs.frozen
class Entry:
    kind: str
    key: str
    path: Path
    record: dict
    files: dict[str, bytes] = attrs.field(repr=False)


@attrs.frozen
class Listing:
    kind: str
    key: str
    path: Path
    bytes: int
    created: float | None
    summary: str
    valid: bool


class Cache:
    def __init__(self, root: str | Path | None = None):
        self.root = cache_root(root)
        #: What happened to corrupt entries this run, for the user to read.
        self.warnings: list[str] = []

    def path(self, kind: str, key: str) -> Path:
        return self.root / kind / key

    @contextmanager
    def lock(self, kind: str, key: str) -> Iterator[None]:
        """Hold the entry's writer lock (blocking), so concurrent runs build it once."""
        lock_path = self.root / kind / f"{key}.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "a+") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def read(self, kind: str, key: str) -> Entry | None:
        """The entry, verified against its manifest; None when absent or corrupt (then removed)."""
        folder = self.path(kind, key)
        manifest = folder / MANIFEST
        if not manifest.exists():
            if folder.exists():
                self._discard(folder, "it has no record (an interrupted write)")
            return None
        try:
            record = json.loads(manifest.read_text(encoding="utf-8"))
            hashes: dict[str, str] = record["files"]
        except (ValueError, KeyError, TypeError) as err:
            self._discard(folder, f"its record is unreadable ({err})")
            return None
        files: dict[str, bytes] = {}
        for name, expected in hashes.items():
            file = folder / name
            if not file.is_file():
                self._discard(folder, f"{name} is missing")
                return None
            data = file.read_bytes()
            if sha256(data) != expected:
                self._discard(folder, f"{name} does not match its recorded hash (truncated or modified)")
                return None
            files[name] = data
        return Entry(kind, key, folder, record, files)

    def write(self, kind: str, key: str, files: dict[str, bytes], record: dict) -> Entry:
        """Write data files, then the manifest that makes the entry valid."""
        folder = self.path(kind, key)
        if (folder / MANIFEST).exists():
            (folder / MANIFEST).unlink()  # invalid until the new manifest lands
        for name, data in files.items():
            atomic_write_bytes(folder / name, data)
        record = dict(record, files={name: sha256(data) for name, data in files.items()}, created=time.time())
        atomic_write_text(folder / MANIFEST, json.dumps(record, indent=2, sort_keys=True, default=_json_default))
        return Entry(kind, key, folder, record, dict(files))

    def add_files(self, entry: Entry, files: dict[str, bytes]) -> Entry:
        """Add derived files (mean activations) to a valid entry, rewriting its manifest."""
        merged = dict(entry.files, **files)
        record = {k: v for k, v in entry.record.items() if k not in ("files", "created")}
        return self.write(entry.kind, entry.key, merged, record)

    def _discard(self, folder: Path, why: str) -> None:
        self.warnings.append(f"cache entry {folder} was corrupt and will be rebuilt: {why}")
        shutil.rmtree(folder, ignore_errors=True)

    def entries(self) -> list[Listing]:
        out = []
        for kind in KINDS:
            base = self.root / kind
            if not base.is_dir():
                continue
            for folder in sorted(p for p in base.iterdir() if p.is_dir()):
                size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
                try:
                    record = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
                    out.append(Listing(kind, folder.name, folder, size, record.get("created"), record.get("summary", ""), True))
                except (OSError, ValueError):
                    out.append(Listing(kind, folder.name, folder, size, None, "incomplete or corrupt", False))
        return out

    def clear(self, kind: str | None = None) -> int:
        """Remove every entry (of one kind); returns how many were removed."""
        removed = 0
        for listing in self.entries():
            if kind is None or listing.kind == kind:
                shutil.rmtree(listing.path, ignore_errors=True)
                removed += 1
        for k in KINDS if kind is None else (kind,):
            for lock in (self.root / k).glob("*.lock") if (self.root / k).is_dir() else ():
                lock.unlink(missing_ok=True)
        return removed
