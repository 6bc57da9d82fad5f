"""The content-addressed cache of trained models, mean activations and circuits.

An entry is a folder ``ROOT/KIND/KEY/`` holding data files and ``record.json``,
the manifest. KEY is a hash of everything that determines the entry's
contents, so a changed spec simply misses. The manifest lists the SHA-256 and
size of every file and is written last, through a rename: an entry without a
valid manifest (not JSON, not an object, ``files`` missing, empty or not a map
of plain names to hashes), or whose files do not match it, is corrupt, and is
removed and rebuilt rather than trusted; ``Cache.entries`` reports each
entry's health the same way, without removing anything. Writers of one entry take a file lock, so two
runs of the same spec train once. Nothing here unpickles anything: weights
are safetensors and records are JSON.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import stat
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

import attrs

from circuitdsl.store.files import atomic_write_bytes, atomic_write_text, cache_root

MANIFEST = "record.json"
KINDS = ("models", "circuits", "bridges", "verdicts")


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


#: An entry whose files all match its record.
OK = "ok"
#: An entry without a record: a write that has not finished, or never will.
INCOMPLETE = "incomplete"
#: The largest ``record.json`` read (a record holds a training curve: kilobytes).
MAX_RECORD_BYTES = 64 * 1024 * 1024
_SHA256 = re.compile(r"[0-9a-f]{64}")


@attrs.frozen
class Listing:
    kind: str
    key: str
    path: Path
    bytes: int
    created: float | None
    summary: str
    valid: bool
    #: ``ok``, ``incomplete`` or ``corrupt: <why>``, from checking every file against the record.
    health: str = OK


class _Corrupt(Exception):
    """Why an entry cannot be trusted; ``health`` is what ``circ cache ls`` shows."""

    def __init__(self, why: str, health: str | None = None):
        super().__init__(why)
        self.why = why
        self.health = health or f"corrupt: {why}"


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

    def read(self, kind: str, key: str, *, require: Iterable[str] = ()) -> Entry | None:
        """The entry, verified against its record; None when absent or not to be trusted.

        An entry is not trusted when its record is not a JSON object listing
        each file's SHA-256 (and size), when a file is missing or does not
        match, or when a file named in ``require`` is not among them. Such an
        entry is removed, with a line in :attr:`warnings`, so the caller's
        ordinary write rebuilds it.
        """
        folder = self.path(kind, key)
        if not os.path.lexists(folder):
            return None
        try:
            record, files = _inspect(folder, require=tuple(require), load=True)
        except _Corrupt as bad:
            self._discard(folder, bad.why)
            return None
        return Entry(kind, key, folder, record, files)

    def write(self, kind: str, key: str, files: dict[str, bytes], record: dict) -> Entry:
        """Write data files, then the manifest that makes the entry valid."""
        folder = self.path(kind, key)
        for name in files:
            try:
                _check_name(name)
            except _Corrupt as bad:
                raise ValueError(f"cannot write cache entry {folder}: {bad.why}") from None
        if os.path.lexists(folder) and (folder.is_symlink() or not folder.is_dir()):
            folder.unlink()  # a stray file or link where the entry goes
        manifest = folder / MANIFEST
        if manifest.is_dir() and not manifest.is_symlink():
            shutil.rmtree(manifest)
        elif os.path.lexists(manifest):
            manifest.unlink()  # invalid until the new manifest lands
        for name, data in files.items():
            atomic_write_bytes(folder / name, data)
        record = dict(
            record,
            files={name: sha256(data) for name, data in files.items()},
            sizes={name: len(data) for name, data in files.items()},
            created=time.time(),
        )
        atomic_write_text(folder / MANIFEST, json.dumps(record, indent=2, sort_keys=True, default=_json_default))
        return Entry(kind, key, folder, record, dict(files))

    def add_files(self, entry: Entry, files: dict[str, bytes]) -> Entry:
        """Add derived files (mean activations) to a valid entry, rewriting its manifest."""
        merged = dict(entry.files, **files)
        record = {k: v for k, v in entry.record.items() if k not in ("files", "sizes", "created")}
        return self.write(entry.kind, entry.key, merged, record)

    def _discard(self, folder: Path, why: str) -> None:
        self.warnings.append(f"cache entry {folder} was corrupt and will be rebuilt: {why}")
        _remove(folder)

    def entries(self, *, verify: bool = True) -> list[Listing]:
        """Every entry with its health; ``verify=False`` checks sizes, not hashes (no file is read)."""
        out = []
        for kind, folder in self._folders():
            try:
                size = sum(f.lstat().st_size for f in folder.iterdir() if f.is_file() and not f.is_symlink())
            except OSError:
                size = 0
            try:
                record, _ = _inspect(folder, hash_files=verify)
                health = OK
            except _Corrupt as bad:
                record, health = _readable_record(folder), bad.health
            created = record.get("created") if isinstance(record.get("created"), (int, float)) else None
            summary = record.get("summary") if isinstance(record.get("summary"), str) else ""
            out.append(Listing(kind, folder.name, folder, size, created, summary, health == OK, health))
        return out

    def _folders(self) -> Iterator[tuple[str, Path]]:
        for kind in KINDS:
            base = self.root / kind
            if not base.is_dir():
                continue
            for path in sorted(base.iterdir()):
                if path.name.endswith(".lock") or path.name.startswith("."):
                    continue
                yield kind, path

    def clear(self, kind: str | None = None) -> int:
        """Remove every entry (of one kind), whatever its health; returns how many were removed."""
        removed = 0
        for k, folder in list(self._folders()):
            if kind is None or k == kind:
                _remove(folder)
                removed += 1
        for k in KINDS if kind is None else (kind,):
            for lock in (self.root / k).glob("*.lock") if (self.root / k).is_dir() else ():
                lock.unlink(missing_ok=True)
        return removed


def _remove(path: Path) -> None:
    if path.is_symlink() or (os.path.lexists(path) and not path.is_dir()):
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def _check_name(name: object) -> str:
    """A data file's name: a plain file name in the entry's folder, never a path out of it."""
    if (
        not isinstance(name, str)
        or not name
        or name in (".", "..", MANIFEST)
        or name.startswith(".")
        or "/" in name
        or "\\" in name
        or "\0" in name
    ):
        raise _Corrupt(f"its record names a file {name!r} that cannot be in an entry")
    return name


def _regular(path: Path, limit: int | None = None) -> os.stat_result:
    """``lstat`` of a file that must be a regular file (not a link, pipe or folder), or :class:`_Corrupt`."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise _Corrupt(f"{path.name} is missing") from None
    except OSError as err:
        raise _Corrupt(f"{path.name} cannot be read ({err.strerror or err})") from None
    if not stat.S_ISREG(info.st_mode):
        raise _Corrupt(f"{path.name} is not a regular file")
    if limit is not None and info.st_size > limit:
        raise _Corrupt(f"{path.name} is larger than {limit} bytes")
    return info


def _load_record(folder: Path) -> dict:
    if not folder.is_dir() or folder.is_symlink():
        raise _Corrupt("it is not a folder")
    manifest = folder / MANIFEST
    if not os.path.lexists(manifest):
        raise _Corrupt("it has no record (an interrupted write)", INCOMPLETE)
    _regular(manifest, MAX_RECORD_BYTES)
    try:
        record = json.loads(manifest.read_bytes().decode("utf-8"))
    except OSError as err:
        raise _Corrupt(f"its record is unreadable ({err.strerror or err})") from None
    except (ValueError, RecursionError) as err:  # not UTF-8, not JSON, nested past the parser's limit
        raise _Corrupt(f"its record is unreadable (not JSON: {err})") from None
    if not isinstance(record, dict):
        raise _Corrupt(f"its record is unreadable ({_json_type(record)}, not a JSON object)")
    return record


def _readable_record(folder: Path) -> dict:
    """The record of an entry that failed its check, for its summary; {} when it has none."""
    try:
        return _load_record(folder)
    except _Corrupt:
        return {}


def _inspect(
    folder: Path, *, require: tuple[str, ...] = (), load: bool = False, hash_files: bool = True
) -> tuple[dict, dict[str, bytes]]:
    """The record and (with ``load``) the files of a sound entry, or :class:`_Corrupt` saying what is wrong."""
    record = _load_record(folder)
    hashes = record.get("files")
    if hashes is None:
        raise _Corrupt("its record lists no files (no `files`)")
    if not isinstance(hashes, dict):
        raise _Corrupt(f"its record's `files` is {_json_type(hashes)}, not a map from file names to SHA-256")
    if not hashes:
        raise _Corrupt("its record lists no files (`files` is empty)")
    sizes = record.get("sizes", {})
    if not isinstance(sizes, dict):
        raise _Corrupt(f"its record's `sizes` is {_json_type(sizes)}, not a map from file names to sizes")
    created = record.get("created")
    if created is not None and (not isinstance(created, (int, float)) or isinstance(created, bool)):
        raise _Corrupt(f"its record's `created` is {_json_type(created)}, not a time")
    if "summary" in record and not isinstance(record["summary"], str):
        raise _Corrupt(f"its record's `summary` is {_json_type(record['summary'])}, not a string")
    for name in require:
        if name not in hashes:
            raise _Corrupt(f"its record does not list {name}")
    files: dict[str, bytes] = {}
    for name, expected in hashes.items():
        _check_name(name)
        if not isinstance(expected, str) or not _SHA256.fullmatch(expected):
            raise _Corrupt(f"its record's hash of {name} is not a SHA-256")
        size = sizes.get(name)
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
            raise _Corrupt(f"its record's size of {name} is not a byte count")
        info = _regular(folder / name)
        if size is not None and info.st_size != size:
            raise _Corrupt(f"{name} does not match its recorded hash (truncated: {info.st_size} of {size} bytes)")
        if not (load or hash_files):
            continue
        try:
            data = (folder / name).read_bytes()
        except OSError as err:
            raise _Corrupt(f"{name} cannot be read ({err.strerror or err})") from None
        if sha256(data) != expected:
            raise _Corrupt(f"{name} does not match its recorded hash (truncated or modified)")
        if load:
            files[name] = data
    return record, files


def _json_type(value: object) -> str:
    """What a JSON value is, with its article: ``a list``, ``an object``."""
    if isinstance(value, bool):
        return "a bool"
    return {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number", type(None): "null"}.get(
        type(value), f"a {type(value).__name__}"
    )
