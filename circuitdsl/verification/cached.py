"""A hypothesis's verdicts on one seed, kept in the cache so a warm run need not measure again.

Verification is deterministic: the same model, circuit, hypothesis, seed and
code give the same verdicts, bit for bit. So they are cached like models and
circuits, by content. Unlike those, whose keys carry hand-bumped code versions
(retraining costs minutes), this key holds a digest of every source file of
the language and the runtime and the grammar: any change to the code measures
again, which costs seconds, and a stale verdict can never be read back.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
from pathlib import Path

from circuitdsl.spec.checked import CheckedSpec, HypothesisSpec
from circuitdsl.spec.serialize import to_data
from circuitdsl.store.cache import Cache, content_key
from circuitdsl.syntax.parser import grammar_path
from circuitdsl.verification.verdict import PASS, Verdict

KIND = "verdicts"
FILE = "verdicts.json"


def source_files() -> list[tuple[str, Path]]:
    """(name, path) of the grammar and every ``.py`` file of ``circuitdsl`` and ``runtime``, sorted by name."""
    files = [("grammar", grammar_path())]
    for package in ("circuitdsl", "runtime"):
        # find_spec, not import: importing runtime would import torch.
        for folder in importlib.util.find_spec(package).submodule_search_locations:
            files += [(f"{package}/{p.relative_to(folder).as_posix()}", p) for p in Path(folder).rglob("*.py")]
    return sorted(files)


@functools.lru_cache(maxsize=1)
def source_digest() -> str:
    """SHA-256 over :func:`source_files`, names and contents."""
    digest = hashlib.sha256()
    for name, path in source_files():
        digest.update(name.encode("utf-8") + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def verdicts_key(
    spec: CheckedSpec,
    hyp: HypothesisSpec,
    *,
    model_key: str,
    circuit_key: str,
    bridge_keys: dict[str, list[str]],
    seed: int,
    device: str,
    torch_version: str,
) -> str:
    """Everything the verdicts are a function of. The control model and the means follow from the
    model, the seed and the code; a bridge's dense model does not (its mixture's tasks are named in
    the hypothesis, not held), so ``bridge_keys`` gives each bridge's keys, which hold its models'."""
    return content_key(
        {
            "code": source_digest(),
            "torch": torch_version,
            # Another device computes other low bits, which a threshold may fall between.
            "device": device,
            "model": model_key,
            "circuit": circuit_key,
            "bridges": bridge_keys,
            "hypothesis": to_data(hyp),
            "task": to_data(spec.tasks[hyp.prune.task]),
            "seed": seed,
        }
    )


def read_verdicts(cache: Cache, key: str) -> list[Verdict] | None:
    """The cached verdicts, or None (absent, or an entry that fails its check, which the cache removes)."""
    entry = cache.read(KIND, key, require=(FILE,))
    if entry is None:
        return None
    try:
        return [_from_json(v) for v in json.loads(entry.files[FILE])]
    except (ValueError, KeyError, TypeError):
        return None  # valid bytes of a shape this code does not read: measure again and overwrite


def write_verdicts(cache: Cache, key: str, verdicts: list[Verdict], label: str) -> list[Verdict]:
    """Cache ``verdicts`` (``label`` names them in `circ cache ls`); returns them as read back, so a
    first run and a warm one report the same data."""
    text = json.dumps([v.to_json() for v in verdicts], indent=1)
    passed = sum(v.status == PASS for v in verdicts)
    summary = f"{label}: {passed} of {len(verdicts)} claim{'' if len(verdicts) == 1 else 's'} pass"
    cache.write(KIND, key, {FILE: text.encode("utf-8")}, {"summary": summary})
    return [_from_json(v) for v in json.loads(text)]


def _from_json(v: dict) -> Verdict:
    interval = tuple(v["interval"]) if v["interval"] is not None else None
    return Verdict(v["id"], v["claim"], v["kind"], v["measured"], v["threshold"], v["status"], interval, v["evidence"], v["vacuous"])
