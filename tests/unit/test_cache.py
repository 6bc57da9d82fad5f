"""The cache: content keys, verified reads, corrupt entries removed, locking."""

from __future__ import annotations

import json
import threading
import time

from circuitdsl.cache import Cache, content_key


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

    from circuitdsl.cachedir import atomic_write_text

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "report.html", "<html></html>")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "report.html").stat().st_mode) == 0o644
    assert (tmp_path / "report.html").read_text() == "<html></html>"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # no temporary file left behind
