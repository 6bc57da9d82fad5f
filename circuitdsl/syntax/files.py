"""Files -> parsed modules: reading, imports (relative to the importing file), cycles.

The first stage of the pipeline; the checker takes the modules from here.

Reading a spec is safe on hostile input (a spec from a pull request checked in
CI): an import may only name a regular ``.circ`` file inside the project of
the root spec (see :func:`project_root`) or a folder declared in
``CIRC_IMPORT_PATH``, with symlinks resolved first; anything else is refused
at the ``import`` before it is opened, so ``/dev/zero`` or a named pipe
cannot hang the checker and ``/proc/self/environ`` cannot be echoed in a
diagnostic. Every file is read once, at most :data:`MAX_SPEC_BYTES` of it, as
UTF-8 with an optional byte-order mark.
"""

from __future__ import annotations

import codecs
import os
import stat
from pathlib import Path
from typing import Iterable, Iterator

import attrs

from circuitdsl.diagnostics import CircError, Diagnostic
from circuitdsl.syntax import ast as n
from circuitdsl.syntax.parser import parse
from circuitdsl.syntax.spans import Span

#: The suffix every imported file must have.
SPEC_SUFFIX = ".circ"
#: The largest spec file read (the biggest shipped spec is a few KB).
MAX_SPEC_BYTES = 16 * 1024 * 1024
#: A folder holding one of these is a project root (the nearest one above the root spec wins).
ROOT_MARKERS = ("circ.toml", "pyproject.toml", ".git")
#: More folders whose files may be imported, separated by ``os.pathsep`` (``:``).
IMPORT_PATH_ENV = "CIRC_IMPORT_PATH"


def display_path(path: Path) -> str:
    """Paths in messages: relative to the working directory when inside it, as users typed them."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError, RuntimeError):  # outside the working directory; a symlink loop
        return str(path)


def project_root(spec: str | Path) -> Path:
    """The folder a spec's imports must stay in.

    The nearest folder at or above the spec's own (symlinks in the folder's
    path followed, not the spec's own name) that holds ``circ.toml``,
    ``pyproject.toml`` or ``.git``; without one, the spec's own folder.
    """
    start = Path(os.path.abspath(spec)).parent
    start = _resolve(start) or start
    for folder in (start, *start.parents):
        if any(os.path.lexists(folder / marker) for marker in ROOT_MARKERS):
            return folder
    return start


def declared_import_paths() -> list[Path]:
    """The folders named in ``CIRC_IMPORT_PATH``, resolved (empty entries skipped)."""
    value = os.environ.get(IMPORT_PATH_ENV, "")
    return [resolved for part in value.split(os.pathsep) if part and (resolved := _resolve(Path(part)))]


def _resolve(path: Path) -> Path | None:
    try:
        return Path(os.path.realpath(path))
    except (OSError, RuntimeError, ValueError):
        return None


class _Unreadable(Exception):
    """Why a file is not read: a diagnostic's code, message and hint, and where it points (if not at the import)."""

    def __init__(self, code: str, message: str, hint: str | None = None, span: Span | None = None, text: str | None = None):
        super().__init__(message)
        self.code, self.message, self.hint, self.span = code, message, hint, span
        #: The file's text, shown under ``span`` (only for a spec file, never for a refused one).
        self.text = text


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _read_spec(path: Path, shown: str) -> str:
    """The text of one spec file, or :class:`_Unreadable`.

    Checked with ``stat`` before it is opened (a device, pipe or directory is
    never opened, so never read), and again on the open file; read as UTF-8
    with a leading byte-order mark skipped.
    """
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise _Unreadable("C0501", "no such file") from None
    except OSError as err:
        raise _Unreadable("C0503", f"cannot be read ({err.strerror or err})") from None
    _check_regular(info)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as err:
        raise _Unreadable("C0503", f"cannot be read ({err.strerror or err})") from None
    try:
        _check_regular(os.fstat(fd))  # the same file as checked, not one swapped in since
        chunks, size = [], 0
        while size <= MAX_SPEC_BYTES:
            chunk = os.read(fd, min(1 << 20, MAX_SPEC_BYTES + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as err:
        raise _Unreadable("C0503", f"cannot be read ({err.strerror or err})") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > MAX_SPEC_BYTES:
        raise _too_large()
    return decode_spec(data, shown)


def _check_regular(info: os.stat_result) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise _Unreadable(
            "C0503", f"is {_kind(info.st_mode)}, not a spec file", hint="a spec is a regular `.circ` text file"
        )
    if info.st_size > MAX_SPEC_BYTES:
        raise _too_large()


def _too_large() -> _Unreadable:
    return _Unreadable(
        "C0503",
        f"is larger than {MAX_SPEC_BYTES // (1024 * 1024)} MiB, the most a spec file may hold",
        hint="split it into files that import each other",
    )


def decode_spec(data: bytes, shown: str) -> str:
    """A spec's bytes as text: UTF-8, a leading byte-order mark dropped; else :class:`_Unreadable` at the first bad byte."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        before = data[: err.start].decode("utf-8")  # valid up to the first bad byte
        line = before.count("\n") + 1
        column = len(before) - (before.rfind("\n") + 1) + 1
        start = len(before)
        span = Span(shown, line, column, line, column + 1, start, start + 1)
        raise _Unreadable(
            "C0503",
            f"{shown} is not UTF-8 text (byte 0x{data[err.start]:02X}: {err.reason})",
            hint="save the file as UTF-8 (Latin-1 and Windows-1252 files are not)",
            span=span,
            text=data.decode("utf-8", errors="replace"),
        ) from None


def read_source(path: Path) -> str:
    """A spec file's text, or a CircError saying why it cannot be read (never an OSError).

    The rules of an import, but for the file named on the command line: a
    regular file of at most 16 MiB, UTF-8 with an optional byte-order mark
    (dropped). Its name is the user's choice; only a symlink is held to the
    rule of imports, that it end inside the project (so `circ check specs/*.circ`
    on a checkout cannot be made to print ``/proc/self/environ``).
    """
    shown = display_path(path)
    try:
        _check_root_link(path, [project_root(path), *declared_import_paths()])
        return _read_spec(path, shown)
    except _Unreadable as err:
        raise CircError([_root_diagnostic(err, shown)], {shown: err.text} if err.text is not None else {}) from None


def _check_root_link(path: Path, allowed: list[Path]) -> None:
    resolved = _resolve(path)
    if resolved is not None and not _inside(resolved, allowed):
        raise _Unreadable(
            "C0503",
            "is a symlink to a file outside its project",
            hint=f"name the file it points to, or add that file's folder to {IMPORT_PATH_ENV}",
        )


def _root_diagnostic(err: _Unreadable, shown: str) -> Diagnostic:
    if err.code == "C0501":
        message = f"no such file: {shown}"
    else:
        message = err.message if err.span is not None else f"{shown} {err.message}"
    return Diagnostic(err.code, message, err.span, hint=err.hint)


def _inside(path: Path, folders: Iterable[Path]) -> bool:
    return any(path == folder or folder in path.parents for folder in folders)


@attrs.define
class _Frame:
    resolved: Path
    file: Path
    module: n.Module
    imports: Iterator[n.Import]
    #: The display paths of the files its imports named so far, read now or before.
    imported: list[str] = attrs.field(factory=list)


def load_modules(
    path: str | Path, *, root: str | Path | None = None, import_paths: Iterable[str | Path] | None = None
) -> tuple[list[n.Module], dict[str, str]]:
    """The root file and everything it imports, each read and parsed once (diamonds are fine).

    Syntax errors in several files are all reported; an import cycle, a
    missing file or a refused one is reported at the `import` that causes it.
    Imports must stay inside ``root`` (default: :func:`project_root` of
    ``path``) or one of ``import_paths`` (default: ``CIRC_IMPORT_PATH``).
    """
    path = Path(path)
    project = (_resolve(Path(root)) or Path(root)) if root is not None else project_root(path)
    extra = declared_import_paths() if import_paths is None else [p for p in map(_resolve, map(Path, import_paths)) if p]
    allowed = [project, *extra]

    modules: list[n.Module] = []
    sources: dict[str, str] = {}
    diagnostics: list[Diagnostic] = []
    done: set[Path] = set()

    def fail(err: _Unreadable, shown: str, importer: n.Import | None) -> None:
        if err.text is not None and err.span is not None:
            sources.setdefault(err.span.path, err.text)
        if importer is None:
            diagnostics.append(_root_diagnostic(err, shown))
            return
        notes: tuple[str, ...] = ()
        span = importer.span
        if err.span is not None:  # a problem inside the imported file: point there, say who imported it
            notes = (f"imported at {importer.span}",) if importer.span is not None else ()
            span = err.span
        message = err.message
        if err.code == "C0501":
            message = f"cannot import `{importer.path}`: no such file"
        elif err.span is None:
            message = f"cannot import `{importer.path}`: it {err.message}"
        diagnostics.append(Diagnostic(err.code, message, span, hint=err.hint, notes=notes))

    def enter(file: Path, chain: list[Path], importer: n.Import | None) -> _Frame | None:
        shown = display_path(file)
        resolved = _resolve(file)
        if resolved is None:
            fail(_Unreadable("C0503", "cannot be resolved (a symlink loop?)"), shown, importer)
            return None
        if importer is not None:
            refused = _refusal(importer, resolved, project, allowed)
            if refused is not None:
                fail(refused, shown, importer)
                return None
        else:
            try:
                _check_root_link(file, allowed)
            except _Unreadable as err:
                fail(err, shown, None)
                return None
        if resolved in chain:
            cycle = " -> ".join(display_path(p) for p in chain[chain.index(resolved):] + [resolved])
            diagnostics.append(
                Diagnostic("C0502", f"import cycle: {cycle}", importer.span, hint="move what both files need into a third file")
            )
            return None
        if resolved in done:
            return None
        try:
            text = _read_spec(resolved, shown)
        except _Unreadable as err:
            if err.code == "C0501" and importer is not None:
                err.hint = f"paths are relative to the importing file; looked for {shown}"
            fail(err, shown, importer)
            return None
        done.add(resolved)
        sources[shown] = text
        try:
            module = parse(text, shown)
        except CircError as err:
            diagnostics.extend(err.diagnostics)
            return None
        return _Frame(resolved, file, module, (item for item in module.items if isinstance(item, n.Import)))

    # Depth first, children before their importer, without recursion: a chain
    # of a thousand imports is an ordinary (if odd) program, not a crash.
    first = enter(path, [], None)
    stack = [first] if first is not None else []
    while stack:
        top = stack[-1]
        item = next(top.imports, None)
        if item is None:
            modules.append(attrs.evolve(top.module, imports=tuple(top.imported)))
            stack.pop()
            continue
        target = top.file.parent / item.path
        top.imported.append(display_path(target))
        frame = enter(target, [f.resolved for f in stack], item)
        if frame is not None:
            stack.append(frame)

    if diagnostics:
        raise CircError(diagnostics, sources)
    return modules, sources


def _refusal(importer: n.Import, resolved: Path, project: Path, allowed: list[Path]) -> _Unreadable | None:
    """Why an import may not be read, judged on its path alone (nothing is opened)."""
    if not _inside(resolved, allowed):
        shown = display_path(project)
        where = "the working directory" if shown == "." else shown
        return _Unreadable(
            "C0503",
            "is outside the project",
            hint=(
                f"imports must stay in the project root ({where}: the nearest folder above the root spec with circ.toml, "
                f"pyproject.toml or .git, else the spec's own folder), symlinks followed; {IMPORT_PATH_ENV} may name more folders"
            ),
        )
    if Path(importer.path).suffix != SPEC_SUFFIX or resolved.suffix != SPEC_SUFFIX:
        return _Unreadable(
            "C0503",
            f"is not a `{SPEC_SUFFIX}` file; only spec files can be imported",
            hint=(
                "a spec imports other specs, named `NAME.circ`"
                if Path(importer.path).suffix != SPEC_SUFFIX
                else "it is a symlink to a file whose name does not end in `.circ`"
            ),
        )
    return None
