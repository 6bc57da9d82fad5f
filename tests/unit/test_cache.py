"""The cache: content keys, verified reads, corrupt entries removed, locking."""

from __future__ import annotations

import json
import threading
import time

from circuitdsl.store.cache import Cache, content_key


def test_content_key_ignores_dict_order_and_sees_every_value():
    assert content_key({"a": 1, "b": [1, 2]}) == content_key({"b": [1, 2], "a": 1})
    assert content_key({"a": 1}) != content_key({"a": 2})
    assert content_key({"a": (1, 2)}) == content_key({"a": [1, 2]})


def test_an_entry_reads_back_as_written(tmp_path):
    cache = Cache(tmp_path)
    cache.write("models", "k1", {"weights.safetensors": b"\x00\x01", "extra.bin": b"x"}, {"summary": "s"})
    entry = cache.read("models", "k1")
    assert entry is not None and entry.files == {"weights.safetensors": b"\x00\x01", "extra.bin": b"x"}
    assert entry.record["summary"] == "s" and cache.warnings == []


def test_a_missing_entry_reads_as_none(tmp_path):
    assert Cache(tmp_path).read("models", "nope") is None


def test_a_truncated_file_is_detected_removed_and_reported(tmp_path):
    cache = Cache(tmp_path)
    entry = cache.write("models", "k1", {"weights.safetensors": b"0123456789"}, {})
    (entry.path / "weights.safetensors").write_bytes(b"01234")
    assert cache.read("models", "k1") is None
    assert not entry.path.exists()
    assert "does not match its recorded hash" in cache.warnings[0]


def test_an_unreadable_record_or_interrupted_write_is_corrupt(tmp_path):
    cache = Cache(tmp_path)
    entry = cache.write("models", "k1", {"w": b"1"}, {})
    (entry.path / "record.json").write_text("{not json")
    assert cache.read("models", "k1") is None and "unreadable" in cache.warnings[-1]
    # Data written but no record: a run died before it finished the entry.
    (tmp_path / "models" / "k2").mkdir(parents=True)
    (tmp_path / "models" / "k2" / "w").write_bytes(b"1")
    assert cache.read("models", "k2") is None and "no record" in cache.warnings[-1]


def test_add_files_keeps_the_entry_valid(tmp_path):
    cache = Cache(tmp_path)
    entry = cache.write("models", "k1", {"w": b"1"}, {"summary": "s"})
    cache.add_files(entry, {"means": b"2"})
    again = cache.read("models", "k1")
    assert again.files == {"w": b"1", "means": b"2"} and again.record["summary"] == "s"


def test_list_and_clear(tmp_path):
    cache = Cache(tmp_path)
    cache.write("models", "a", {"w": b"1"}, {"summary": "model a"})
    cache.write("circuits", "b", {"c": b"1"}, {"summary": "circuit b"})
    listed = {(x.kind, x.key, x.summary) for x in cache.entries()}
    assert listed == {("models", "a", "model a"), ("circuits", "b", "circuit b")}
    assert cache.clear("circuits") == 1 and [x.key for x in cache.entries()] == ["a"]
    assert cache.clear() == 1 and cache.entries() == []


def test_the_writer_lock_serialises_builders(tmp_path):
    cache = Cache(tmp_path)
    events: list[str] = []

    def builder(name: str):
        with cache.lock("models", "k"):
            events.append(f"{name} in")
            time.sleep(0.05)
            events.append(f"{name} out")

    threads = [threading.Thread(target=builder, args=(n,)) for n in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Whoever went first left before the other came in.
    assert events[0][0] == events[1][0] and events[2][0] == events[3][0]


def test_records_are_plain_json(tmp_path):
    entry = Cache(tmp_path).write("models", "k", {"w": b"1"}, {"metrics": {"acc": 1.0}})
    record = json.loads((entry.path / "record.json").read_text())
    assert record["metrics"] == {"acc": 1.0} and "w" in record["files"]


def test_written_files_get_the_umask_permissions_not_mkstemps_private_ones(tmp_path):
    import os
    import stat

    from circuitdsl.store.files import atomic_write_text

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "report.html", "<html></html>")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "report.html").stat().st_mode) == 0o644
    assert (tmp_path / "report.html").read_text() == "<html></html>"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # no temporary file left behind


# ---------------------------------------------------------------- malformed entries (issue 13)

import pytest  # noqa: E402

from circuitdsl.store.cache import INCOMPLETE, OK  # noqa: E402

WEIGHTS = {"weights.safetensors": b"0123456789", "means.safetensors": b"abc"}


def _record(entry) -> dict:
    return json.loads((entry.path / "record.json").read_text())


def _rewrite(entry, change) -> None:
    record = _record(entry)
    changed = change(record)
    (entry.path / "record.json").write_text(changed if isinstance(changed, str) else json.dumps(changed))


#: Each way a record.json can be broken: what to do to it, and words of the warning and health.
MALFORMED = {
    "not_json": (lambda r: "{not json", "unreadable"),
    "empty_file": (lambda r: "", "unreadable"),
    "not_utf8": (lambda r: b"\xff\xfe".decode("latin-1"), "unreadable"),
    "a_list": (lambda r: [r], "not a JSON object"),
    "a_string": (lambda r: '"files"', "not a JSON object"),
    "null": (lambda r: "null", "not a JSON object"),
    "files_missing": (lambda r: {k: v for k, v in r.items() if k != "files"}, "lists no files"),
    "files_a_list": (lambda r: dict(r, files=list(r["files"])), "`files` is a list"),
    "files_empty": (lambda r: dict(r, files={}), "lists no files"),
    "files_null": (lambda r: dict(r, files=None), "lists no files"),
    "hash_a_number": (lambda r: dict(r, files=dict(r["files"], **{"means.safetensors": 5})), "not a SHA-256"),
    "hash_wrong": (lambda r: dict(r, files=dict(r["files"], **{"means.safetensors": "0" * 64})), "does not match"),
    "name_escapes": (lambda r: dict(r, files={"../../etc/passwd": "0" * 64}), "cannot be in an entry"),
    "name_is_record": (lambda r: dict(r, files={"record.json": "0" * 64}), "cannot be in an entry"),
    "listed_file_absent": (lambda r: dict(r, files=dict(r["files"], extra="0" * 64)), "extra is missing"),
    "sizes_a_list": (lambda r: dict(r, sizes=[1]), "`sizes` is a list"),
    "size_a_string": (lambda r: dict(r, sizes=dict(r["sizes"], **{"means.safetensors": "3"})), "not a byte count"),
    "created_a_string": (lambda r: dict(r, created="yesterday"), "`created` is a string"),
    "summary_a_map": (lambda r: dict(r, summary={"a": 1}), "`summary` is an object"),
}


@pytest.mark.parametrize("how", list(MALFORMED))
def test_a_malformed_record_is_a_miss_a_warning_and_is_rebuilt(tmp_path, how):
    change, words = MALFORMED[how]
    cache = Cache(tmp_path)
    entry = cache.write("models", "k", WEIGHTS, {"summary": "model k"})
    if how == "not_utf8":
        (entry.path / "record.json").write_bytes(b"\xff\xfe{}")
    else:
        _rewrite(entry, change)
    (listed,) = cache.entries()
    assert not listed.valid and listed.health.startswith("corrupt: ") and words in listed.health, listed.health
    assert cache.warnings == []  # listing reports, never removes
    assert cache.read("models", "k") is None
    assert len(cache.warnings) == 1 and words in cache.warnings[0] and "will be rebuilt" in cache.warnings[0]
    assert not entry.path.exists()
    # The ordinary write path rebuilds it, and it is sound again.
    cache.write("models", "k", WEIGHTS, {"summary": "model k"})
    again = cache.read("models", "k")
    assert again is not None and again.files == WEIGHTS
    assert [(e.key, e.health, e.valid) for e in cache.entries()] == [("k", OK, True)]


@pytest.mark.parametrize(
    "how",
    ["truncated", "modified_same_size", "deleted", "a_directory", "a_symlink", "a_fifo"],
)
def test_a_bad_data_file_is_detected_and_shown(tmp_path, how):
    import os

    cache = Cache(tmp_path)
    entry = cache.write("models", "k", WEIGHTS, {"summary": "model k"})
    target = entry.path / "weights.safetensors"
    target.unlink()
    if how == "truncated":
        target.write_bytes(b"01234")
    elif how == "modified_same_size":
        target.write_bytes(b"0123456780")
    elif how == "a_directory":
        target.mkdir()
    elif how == "a_symlink":
        (tmp_path / "elsewhere").write_bytes(b"0123456789")
        target.symlink_to(tmp_path / "elsewhere")
    elif how == "a_fifo":
        os.mkfifo(target)  # must be refused by its kind, never opened (that would block)
    (listed,) = cache.entries()
    assert listed.health.startswith("corrupt: ") and "weights.safetensors" in listed.health
    assert cache.read("models", "k") is None and "weights.safetensors" in cache.warnings[-1]
    assert not entry.path.exists()


def test_the_quick_listing_sees_truncation_but_not_a_same_size_change(tmp_path):
    cache = Cache(tmp_path)
    entry = cache.write("models", "k", WEIGHTS, {})
    (entry.path / "weights.safetensors").write_bytes(b"0123456780")
    assert cache.entries(verify=False)[0].health == OK
    assert "does not match" in cache.entries()[0].health
    (entry.path / "weights.safetensors").write_bytes(b"01234")
    assert "truncated: 5 of 10 bytes" in cache.entries(verify=False)[0].health


def test_an_entry_without_a_record_is_incomplete(tmp_path):
    cache = Cache(tmp_path)
    (tmp_path / "models" / "k2").mkdir(parents=True)
    (tmp_path / "models" / "k2" / "w").write_bytes(b"1")
    (listed,) = cache.entries()
    assert listed.health == INCOMPLETE and not listed.valid and listed.bytes == 1


def test_a_required_file_missing_from_the_record_is_a_miss(tmp_path):
    cache = Cache(tmp_path)
    cache.write("models", "k", {"means.safetensors": b"abc"}, {})
    assert cache.read("models", "k", require=["weights.safetensors"]) is None
    assert "does not list weights.safetensors" in cache.warnings[0]


def test_a_stray_file_where_an_entry_goes_is_replaced(tmp_path):
    cache = Cache(tmp_path)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "k").write_text("junk")
    assert cache.entries()[0].health == "corrupt: it is not a folder"
    assert cache.read("models", "k") is None
    cache.write("models", "k", WEIGHTS, {})
    assert cache.read("models", "k").files == WEIGHTS


def test_old_records_without_sizes_still_read(tmp_path):
    cache = Cache(tmp_path)
    entry = cache.write("models", "k", WEIGHTS, {})
    _rewrite(entry, lambda r: {k: v for k, v in r.items() if k != "sizes"})
    assert cache.read("models", "k").files == WEIGHTS and cache.entries()[0].health == OK


def test_clear_removes_corrupt_entries_too(tmp_path):
    cache = Cache(tmp_path)
    entry = cache.write("models", "a", WEIGHTS, {})
    _rewrite(entry, lambda r: [r])
    (tmp_path / "models" / "b").mkdir()
    assert cache.clear() == 2 and cache.entries() == []


def test_cache_ls_shows_health(tmp_path):
    from typer.testing import CliRunner

    from circuitdsl.cli import app

    cache = Cache(tmp_path)
    cache.write("models", "good", WEIGHTS, {"summary": "model good"})
    bad = cache.write("models", "bad", WEIGHTS, {"summary": "[red]model bad"})
    _rewrite(bad, lambda r: dict(r, files=list(r["files"])))
    (tmp_path / "circuits" / "half").mkdir(parents=True)
    runner = CliRunner()
    result = runner.invoke(app, ["cache", "ls", "--cache-dir", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["key"]: row for row in json.loads(result.stdout)["entries"]}
    assert rows["good"]["health"] == "ok" and rows["good"]["valid"] is True
    assert rows["bad"]["health"].startswith("corrupt: ") and rows["bad"]["valid"] is False
    assert rows["half"]["health"] == "incomplete" and rows["half"]["valid"] is False
    table = runner.invoke(app, ["cache", "ls", "--cache-dir", str(tmp_path)])
    assert table.exit_code == 0 and "health" in table.output and "incomplete" in table.output
    assert "corrupt" in table.output and "[red]model bad" in table.output  # markup in a record is shown, not run
    assert runner.invoke(app, ["cache", "ls", "--cache-dir", str(tmp_path), "--quick", "--json"]).exit_code == 0
