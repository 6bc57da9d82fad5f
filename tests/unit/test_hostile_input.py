"""Hostile and broken spec files: a located error and exit 4, never a traceback, a hang or a leak.

A spec from a pull request is checked in CI with the CI's secrets in its
environment, so an import may not read anything but a regular `.circ` file
inside the project (issue 13). Whatever is refused, its content must not
appear in the output. Anything that could block (a named pipe, /dev/zero) runs
`circ` in a subprocess with a timeout, so a regression fails instead of
hanging the suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from circuitdsl.cli import app
from circuitdsl.diagnostics import CircError
from circuitdsl.exit_codes import ExitCode
from circuitdsl.syntax.files import MAX_SPEC_BYTES, load_modules, project_root, read_source

runner = CliRunner()

MODEL = "model m { layers = 2 }\n"
SECRET = "s3cr3t-do-not-print-7f1c"


def check(*files: Path):
    return runner.invoke(app, ["check", *map(str, files)])


def circ(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """`circ` in its own process: a hang is a TimeoutExpired, not a stuck test run."""
    return subprocess.run(
        [sys.executable, "-m", "circuitdsl", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder (a `circ.toml` marks it) beside a folder that is outside it."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "circ.toml").write_text("")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.circ").write_text(f'task t {{ prompt = "{SECRET}" answer = "x" }}\n{SECRET}\n')
    return root


def importing(project: Path, target: str, name: str = "main.circ") -> Path:
    spec = project / name
    spec.write_text(f'import "{target}"\n{MODEL}')
    return spec


def refused(result, target: str) -> str:
    """The output of a run that refused ``target``: exit 4, located at the import, no traceback."""
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "Traceback" not in result.output
    assert f"cannot import `{target}`" in result.output
    assert "main.circ:1:1" in result.output
    return result.output


# ---------------------------------------------------------------- confinement


def test_etc_passwd_is_refused_and_not_echoed(project):
    output = refused(check(importing(project, "/etc/passwd")), "/etc/passwd")
    assert "outside the project" in output
    first_line = Path("/etc/passwd").read_text(errors="replace").split("\n", 1)[0]
    assert not first_line or first_line not in output
    assert "root:" not in output


def test_proc_self_environ_is_refused_and_the_environment_not_printed(project):
    spec = importing(project, "/proc/self/environ")
    result = circ("check", str(spec), env={"CI_SECRET_TOKEN": SECRET})
    assert result.returncode == ExitCode.USAGE, result.stderr
    assert "cannot import `/proc/self/environ`: it is outside the project" in result.stderr
    assert SECRET not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_dotdot_out_of_the_project_is_refused(project):
    output = refused(check(importing(project, "../outside/secret.circ")), "../outside/secret.circ")
    assert "outside the project" in output and SECRET not in output


def test_the_refusal_does_not_say_whether_an_outside_file_exists(project):
    there = refused(check(importing(project, "../outside/secret.circ")), "../outside/secret.circ")
    absent = refused(check(importing(project, "../outside/absent.circ")), "../outside/absent.circ")
    assert there.replace("secret", "absent") == absent


def test_a_symlink_pointing_outside_is_refused(project):
    (project / "link.circ").symlink_to(project.parent / "outside" / "secret.circ")
    output = refused(check(importing(project, "link.circ")), "link.circ")
    assert "outside the project" in output and SECRET not in output


def test_a_symlink_to_a_non_spec_inside_is_refused(project):
    (project / "notes.txt").write_text(SECRET)
    (project / "notes.circ").symlink_to(project / "notes.txt")
    output = refused(check(importing(project, "notes.circ")), "notes.circ")
    assert "is not a `.circ` file" in output and "symlink" in output and SECRET not in output


def test_a_symlink_inside_the_project_is_followed(project):
    (project / "lib").mkdir()
    (project / "lib" / "base.circ").write_text("model base { layers = 1 }\n")
    (project / "alias.circ").symlink_to(project / "lib" / "base.circ")
    result = check(importing(project, "alias.circ"))
    assert result.exit_code == ExitCode.OK, result.output


def test_a_non_circ_file_is_refused_and_not_echoed(project):
    (project / "notes.txt").write_text(f"{SECRET}\n")
    output = refused(check(importing(project, "notes.txt")), "notes.txt")
    assert "only spec files can be imported" in output and SECRET not in output


def test_a_directory_is_refused(project):
    (project / "dir.circ").mkdir()
    output = refused(check(importing(project, "dir.circ")), "dir.circ")
    assert "is a directory" in output


def test_a_symlink_loop_is_an_error(project):
    (project / "a.circ").symlink_to(project / "b.circ")
    (project / "b.circ").symlink_to(project / "a.circ")
    refused(check(importing(project, "a.circ")), "a.circ")


def test_a_file_over_the_size_limit_is_refused_without_reading_it(project):
    with open(project / "huge.circ", "wb") as handle:
        handle.truncate(MAX_SPEC_BYTES + 1)  # sparse: nothing to read, only its size to see
    output = refused(check(importing(project, "huge.circ")), "huge.circ")
    assert "larger than 16 MiB" in output


def test_the_project_root_is_the_nearest_marked_folder(project):
    (project / "specs").mkdir()
    (project / "shared").mkdir()
    (project / "shared" / "common.circ").write_text("model base { layers = 1 }\n")
    spec = project / "specs" / "main.circ"
    spec.write_text(f'import "../shared/common.circ"\n{MODEL}')
    assert project_root(spec) == project.resolve()
    assert check(spec).exit_code == ExitCode.OK
    # Without the marker the spec's own folder is the root, and ../shared is outside it.
    (project / "circ.toml").unlink()
    assert project_root(spec) == (project / "specs").resolve()
    refused(check(spec), "../shared/common.circ")


def test_declared_import_paths_widen_the_project(project, monkeypatch):
    (project.parent / "outside" / "shared.circ").write_text("model base { layers = 1 }\n")
    spec = importing(project, "../outside/shared.circ")
    with pytest.raises(CircError):
        load_modules(spec)
    modules, _ = load_modules(spec, import_paths=[project.parent / "outside"])
    assert len(modules) == 2
    monkeypatch.setenv("CIRC_IMPORT_PATH", str(project.parent / "outside"))
    assert len(load_modules(spec)[0]) == 2


# ---------------------------------------------------------------- things that could hang


def test_dev_zero_never_hangs(project):
    spec = importing(project, "/dev/zero")
    result = circ("check", str(spec), timeout=60)
    assert result.returncode == ExitCode.USAGE and "cannot import `/dev/zero`" in result.stderr
    root = circ("check", "/dev/zero", timeout=60)
    assert root.returncode == ExitCode.USAGE and "/dev/zero is a device, not a spec file" in root.stderr
    assert "Traceback" not in result.stderr + root.stderr


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_named_pipe_never_hangs(project):
    os.mkfifo(project / "pipe.circ")
    spec = importing(project, "pipe.circ")
    imported = circ("check", str(spec), timeout=60)
    assert imported.returncode == ExitCode.USAGE, imported.stderr
    assert "cannot import `pipe.circ`: it is a named pipe, not a spec file" in imported.stderr
    for command in ("check", "fmt"):
        root = circ(command, str(project / "pipe.circ"), timeout=60)
        assert root.returncode == ExitCode.USAGE, root.stderr
        assert "is a named pipe, not a spec file" in root.stderr and "Traceback" not in root.stderr


def test_a_deep_import_chain_is_not_a_recursion_error(tmp_path):
    depth = 1500
    for i in range(depth):
        (tmp_path / f"f{i}.circ").write_text(f'import "f{i + 1}.circ"\n')
    (tmp_path / f"f{depth}.circ").write_text(MODEL)
    modules, sources = load_modules(tmp_path / "f0.circ")
    assert len(modules) == depth + 1 and len(sources) == depth + 1


# ---------------------------------------------------------------- encodings

LATIN1 = "model m {\n  layers = 2 # café\n}\n".encode("latin-1")


def test_a_bom_is_skipped_and_columns_do_not_count_it(tmp_path):
    spec = tmp_path / "bom.circ"
    spec.write_bytes(b"\xef\xbb\xbf" + MODEL.encode())
    assert check(spec).exit_code == ExitCode.OK
    assert read_source(spec) == MODEL
    spec.write_bytes(b"\xef\xbb\xbfmodel m { layers = 0 }\n")
    result = check(spec)
    assert result.exit_code == ExitCode.USAGE and "bom.circ:1:20" in result.output


def test_an_imported_file_with_a_bom(project):
    (project / "lib.circ").write_bytes(b"\xef\xbb\xbfmodel base { layers = 1 }\n")
    assert check(importing(project, "lib.circ")).exit_code == ExitCode.OK


def test_latin1_via_check_is_located_at_the_first_bad_byte(tmp_path):
    spec = tmp_path / "latin1.circ"
    spec.write_bytes(LATIN1)
    result = check(spec)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "error[C0503]" in result.output and "is not UTF-8 text (byte 0xE9" in result.output
    assert "latin1.circ:2:19" in result.output and "Traceback" not in result.output


def test_latin1_imported_points_into_the_file_and_names_the_import(project):
    (project / "latin1.circ").write_bytes(LATIN1)
    result = check(importing(project, "latin1.circ"))
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "latin1.circ:2:19" in result.output and "imported at" in result.output and "main.circ:1:1" in result.output


def test_latin1_via_fmt_is_located_and_the_file_left_alone(tmp_path):
    spec = tmp_path / "latin1.circ"
    spec.write_bytes(LATIN1)
    for args in (["fmt", str(spec)], ["fmt", "--check", str(spec)]):
        result = runner.invoke(app, args)
        assert result.exit_code == ExitCode.USAGE, result.output
        assert "not UTF-8" in result.output and "latin1.circ:2:19" in result.output
        assert "Traceback" not in result.output
    assert spec.read_bytes() == LATIN1


def test_fmt_drops_a_bom_only_when_it_rewrites_the_file(tmp_path):
    """Documented in docs/language.md: fmt writes UTF-8 without a BOM; a file it leaves alone keeps its bytes."""
    formatted = tmp_path / "formatted.circ"
    formatted.write_bytes(b"\xef\xbb\xbfmodel m {\n    layers = 2\n}\n")
    assert runner.invoke(app, ["fmt", "--check", str(formatted)]).exit_code == ExitCode.OK
    assert runner.invoke(app, ["fmt", str(formatted)]).exit_code == ExitCode.OK
    assert formatted.read_bytes().startswith(b"\xef\xbb\xbf")
    messy = tmp_path / "messy.circ"
    messy.write_bytes(b"\xef\xbb\xbfmodel m {   layers = 2 }\n")
    assert runner.invoke(app, ["fmt", str(messy)]).exit_code == ExitCode.OK
    assert messy.read_bytes() == b"model m {\n    layers = 2\n}\n"


def test_read_source_of_a_missing_file_is_a_circ_error(tmp_path):
    with pytest.raises(CircError) as caught:
        read_source(tmp_path / "nope.circ")
    assert caught.value.diagnostics[0].code == "C0501"


def test_a_root_spec_that_is_a_symlink_out_of_its_project_is_refused(project, tmp_path):
    """`circ check specs/*.circ` on a checkout: a committed symlink cannot make it print a secret."""
    secret = tmp_path / "environ"
    secret.write_text(f"CI_SECRET_TOKEN={SECRET}\n")
    (project / "evil.circ").symlink_to(secret)
    for command in ("check", "fmt"):
        result = runner.invoke(app, [command, str(project / "evil.circ")])
        assert result.exit_code == ExitCode.USAGE, result.output
        assert "is a symlink to a file outside its project" in result.output
        assert SECRET not in result.output and "Traceback" not in result.output
    # /proc/self/environ itself, behind a committed symlink, in a fresh process with a secret in its environment.
    (project / "env.circ").symlink_to("/proc/self/environ")
    result = circ("check", str(project / "env.circ"), env={"CI_SECRET_TOKEN": SECRET})
    assert result.returncode == ExitCode.USAGE and SECRET not in result.stdout + result.stderr


def test_a_root_spec_named_directly_may_live_anywhere(tmp_path):
    """The file named on the command line is the user's choice; only a symlink to it is held to its project."""
    spec = tmp_path / "anywhere.circ"
    spec.write_text(MODEL)
    assert check(spec).exit_code == ExitCode.OK
    assert read_source(spec) == MODEL
