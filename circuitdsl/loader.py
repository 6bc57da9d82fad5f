"""Files -> parsed modules: reading, imports (relative to the importing file), cycles."""

from __future__ import annotations

from pathlib import Path

from . import nodes as n
from .checker import check_modules
from .diagnostics import CircError, Diagnostic
from .parser import parse
from .program import Program


def display_path(path: Path) -> str:
    """Paths in messages: relative to the working directory when inside it, as users typed them."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def load_modules(path: str | Path) -> tuple[list[n.Module], dict[str, str]]:
    """The root file and everything it imports, each read and parsed once (diamonds are fine).

    Syntax errors in several files are all reported; an import cycle or a
    missing file is reported at the `import` that causes it.
    """
    modules: list[n.Module] = []
    sources: dict[str, str] = {}
    diagnostics: list[Diagnostic] = []
    done: set[Path] = set()

    def visit(file: Path, chain: list[Path], importer: n.Import | None) -> None:
        resolved = file.resolve()
        if resolved in chain:
            cycle = " -> ".join(display_path(p) for p in chain[chain.index(resolved):] + [resolved])
            diagnostics.append(
                Diagnostic("C0502", f"import cycle: {cycle}", importer.span, hint="move what both files need into a third file")
            )
            return
        if resolved in done:
            return
        shown = display_path(file)
        try:
            text = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            message = f"cannot import `{importer.path}`: no such file" if importer else f"no such file: {shown}"
            hint = f"paths are relative to the importing file; looked for {shown}" if importer else None
            diagnostics.append(Diagnostic("C0501", message, importer.span if importer else None, hint=hint))
            return
        except UnicodeDecodeError as err:
            diagnostics.append(Diagnostic("C0503", f"{shown} is not UTF-8 text ({err.reason})", importer.span if importer else None))
            return
        except OSError as err:
            diagnostics.append(Diagnostic("C0503", f"cannot read {shown}: {err.strerror}", importer.span if importer else None))
            return
        done.add(resolved)
        sources[shown] = text
        try:
            module = parse(text, shown)
        except CircError as err:
            diagnostics.extend(err.diagnostics)
            return
        for item in module.items:
            if isinstance(item, n.Import):
                visit(file.parent / item.path, chain + [resolved], item)
        modules.append(module)

    visit(Path(path), [], None)
    if diagnostics:
        raise CircError(diagnostics, sources)
    return modules, sources


def load_program(path: str | Path) -> Program:
    """Read, parse and check one ``.circ`` file with its imports."""
    modules, sources = load_modules(path)
    return check_modules(modules, sources, display_path(Path(path)))


def check_text(text: str, path: str = "<string>") -> Program:
    """Parse and check a spec given as text (it may not import other files)."""
    module = parse(text, path)
    sources = {path: text}
    if any(isinstance(item, n.Import) for item in module.items):
        first = next(item for item in module.items if isinstance(item, n.Import))
        raise CircError([Diagnostic("C0501", "a spec given as text cannot import files", first.span)], sources)
    return check_modules([module], sources, path)
