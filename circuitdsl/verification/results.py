"""What `circ verify` found, as plain data: no tensors, no models, no torch.

Reports render from these alone, and a saved ``--json`` document reads back
into them (:func:`from_json`), so ``circ report saved.json`` re-renders a run
on a machine without PyTorch. Every claim is keyed by its id
(:mod:`circuitdsl.spec.claims`).
"""

from __future__ import annotations

from typing import Any

import attrs

from circuitdsl.spec.serialize import SCHEMA_VERSION
from circuitdsl.verification.controls import judge_controls
from circuitdsl.verification.verdict import FAIL, INCONCLUSIVE, PASS, Verdict


@attrs.frozen
class SeedOutcome:
    seed: int
    status: str
    measured: float | None


@attrs.frozen
class ClaimResult:
    """One claim over all seeds: the first seed's measurement, and how many seeds it held on."""

    verdict: Verdict
    held: int
    seeds: int
    status: str
    vacuous: bool
    per_seed: tuple[SeedOutcome, ...] = ()

    @property
    def id(self) -> str:
        return self.verdict.id

    def fails(self, strict: bool) -> bool:
        """Whether this claim makes the run fail: refuted, or under ``--strict`` inconclusive or vacuous."""
        return self.status == FAIL or (strict and (self.status == INCONCLUSIVE or self.vacuous))


@attrs.frozen
class HypothesisResult:
    name: str
    prune: str
    task: str
    claims: tuple[ClaimResult, ...]
    #: The pruned circuit of the first seed (``Circuit.to_json``) and its pruning controls.
    circuit: dict
    controls: dict | None
    #: What reproduces the verdict: spec hashes, model and circuit keys, versions, seconds.
    record: dict
    #: Where the circuit's picture was written, and the picture itself (SVG text).
    picture: str | None = None
    picture_svg: str | None = None
    #: Per bridge its claims went through: NMSE and KL per boundary, the hybrid passes'
    #: accuracy, and the same for the control bridge (fitted to the untrained model).
    bridges: dict = attrs.field(factory=dict)
    #: What each circuit node does (``verification/explain.py``): top prompts, latent split, edges.
    explorer: dict = attrs.field(factory=dict)

    @property
    def refuted(self) -> bool:
        return any(c.status == FAIL for c in self.claims)

    def shaky(self) -> bool:
        """Inconclusive or vacuous claims: failures only under ``--strict``."""
        return any(c.status == INCONCLUSIVE or c.vacuous for c in self.claims)

    def failed(self, strict: bool) -> bool:
        return any(c.fails(strict) for c in self.claims)

    def claim(self, id: str) -> ClaimResult:
        return next(c for c in self.claims if c.id == id)


@attrs.frozen
class FileResult:
    """Every hypothesis verified for one spec file."""

    file: str
    hypotheses: tuple[HypothesisResult, ...]
    #: Whether inconclusive and vacuous claims count as failures.
    strict: bool = False

    @property
    def ok(self) -> bool:
        return not any(h.failed(self.strict) for h in self.hypotheses)


def aggregate(per_seed: list[list[Verdict]], seeds: list[int], share: float) -> tuple[ClaimResult, ...]:
    """Per claim id: PASS when it passed on at least ``share`` of the seeds, FAIL when it failed
    on more than the rest allow, INCONCLUSIVE otherwise."""
    by_id = [{v.id: v for v in verdicts} for verdicts in per_seed]
    needed = max(1, -(-int(round(share * len(per_seed) * 1000)) // 1000))  # ceil, without float fuzz
    results = []
    for verdict in per_seed[0]:
        mine = [run[verdict.id] for run in by_id]
        statuses = [v.status for v in mine]
        held = statuses.count(PASS)
        if held >= needed:
            status = PASS
        elif statuses.count(FAIL) > len(mine) - needed:
            status = FAIL
        else:
            status = INCONCLUSIVE
        outcomes = tuple(SeedOutcome(seed, v.status, v.measured) for seed, v in zip(seeds, mine))
        results.append(ClaimResult(verdict, held, len(mine), status, any(v.vacuous for v in mine), outcomes))
    return tuple(results)


# ---------------------------------------------------------------- JSON


def to_json(result: FileResult) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "file": result.file,
        "ok": result.ok,
        "strict": result.strict,
        "hypotheses": [_hypothesis_json(h, result.strict) for h in result.hypotheses],
    }


def _hypothesis_json(h: HypothesisResult, strict: bool) -> dict:
    return {
        "name": h.name,
        "prune": h.prune,
        "task": h.task,
        "refuted": h.refuted,
        "failed": h.failed(strict),
        "circuit": h.circuit,
        "controls": h.controls,
        # Judged from the controls on writing, so a reader needs no thresholds of its own.
        "control_checks": judge_controls(h.controls, h.circuit),
        "picture": h.picture,
        "picture_svg": h.picture_svg,
        "bridges": h.bridges,
        "explorer": h.explorer,
        "claims": [
            {
                "id": c.id,
                "claim": c.verdict.claim,
                "kind": c.verdict.kind,
                "measured": c.verdict.measured,
                "interval": list(c.verdict.interval) if c.verdict.interval else None,
                "threshold": c.verdict.threshold,
                "status": c.status,
                "vacuous": c.vacuous,
                "seeds_held": c.held,
                "seeds": c.seeds,
                "evidence": c.verdict.evidence,
                "per_seed": [attrs.asdict(s) for s in c.per_seed],
            }
            for c in h.claims
        ],
        "record": h.record,
    }


def from_json(document: dict[str, Any]) -> list[FileResult]:
    """The results a ``circ verify --json`` document holds (one file, or several under ``files``)."""
    if document.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"schema_version {document.get('schema_version')!r} is not {SCHEMA_VERSION}")
    files = document["files"] if "files" in document else [document]
    return [
        FileResult(f["file"], tuple(_hypothesis_from_json(h) for h in f["hypotheses"]), strict=bool(f.get("strict")))
        for f in files
    ]


def _hypothesis_from_json(h: dict) -> HypothesisResult:
    claims = []
    for c in h["claims"]:
        interval = tuple(c["interval"]) if c["interval"] is not None else None
        verdict = Verdict(
            c["id"], c["claim"], c["kind"], c["measured"], c["threshold"], c["per_seed"][0]["status"] if c["per_seed"] else c["status"],
            interval, c["evidence"], c["vacuous"],
        )
        per_seed = tuple(SeedOutcome(**s) for s in c["per_seed"])
        claims.append(ClaimResult(verdict, c["seeds_held"], c["seeds"], c["status"], c["vacuous"], per_seed))
    return HypothesisResult(
        h["name"], h["prune"], h["task"], tuple(claims), h["circuit"], h["controls"], h["record"],
        h.get("picture"), h.get("picture_svg"), h.get("bridges") or {},
        h.get("explorer") or {},
    )
