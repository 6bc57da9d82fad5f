"""A pytest plugin: ``pytest specs/`` runs every claim of every hypothesis as a test item.

Registered through the ``pytest11`` entry point, so installing circuitdsl is
enough. A ``.circ`` file is collected when it declares a hypothesis; each
claim is one item, named by the claim's id (``specs/bracket_depth.circ::averaging::size.nodes``;
an adversarial block gives one item per ``expect``). The
first item of a hypothesis runs the pipeline (train, prune, verify: all
cached), and the others read its verdicts. An invalid spec is one failing
item showing the diagnostics.

Options: ``--circ-cache-dir``, ``--circ-device``, ``--circ-strict`` (inconclusive
and vacuous claims fail). The ini option ``circ_exclude`` lists glob patterns
(relative to the rootdir) of ``.circ`` files not to collect, e.g. deliberately
broken files used as test data.
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import pytest

_HYPOTHESIS = re.compile(r"^\s*hypothesis\s", re.MULTILINE)


def pytest_addoption(parser):
    group = parser.getgroup("circuitdsl", "circuit hypotheses in .circ files")
    group.addoption("--circ-cache-dir", default=None, help="cache for models and circuits (default: $CIRC_CACHE)")
    group.addoption("--circ-device", default="cpu", help="cpu, cuda or auto")
    group.addoption("--circ-strict", action="store_true", help="fail inconclusive and vacuous claims too")
    parser.addini("circ_exclude", "glob patterns of .circ files not to collect", type="linelist", default=[])


def pytest_collect_file(file_path: Path, parent):
    if file_path.suffix != ".circ":
        return None
    config = parent.config
    relative = str(file_path.relative_to(config.rootpath)) if file_path.is_relative_to(config.rootpath) else str(file_path)
    if any(fnmatch.fnmatch(relative, pattern) for pattern in config.getini("circ_exclude")):
        return None
    if not _HYPOTHESIS.search(file_path.read_text(encoding="utf-8", errors="replace")):
        return None
    return CircFile.from_parent(parent, path=file_path)


class CircFile(pytest.File):
    def collect(self):
        from circuitdsl.diagnostics import CircError
        from circuitdsl.pipeline import check_spec

        try:
            spec = check_spec(self.path)
        except CircError as err:
            yield InvalidSpec.from_parent(self, name="check", error=err)
            return
        for name, hyp in spec.hypotheses.items():
            if hyp.span is not None and Path(hyp.span.path).resolve() != self.path.resolve():
                continue  # declared in an imported file: collected there
            runner = _HypothesisRunner(self.config, spec, name)
            for claim in hyp.claims:
                yield ClaimItem.from_parent(self, name=f"{name}::{claim.id}", runner=runner, claim_id=claim.id, text=claim.text)


class InvalidSpec(pytest.Item):
    def __init__(self, *, error, **kwargs):
        super().__init__(**kwargs)
        self.error = error

    def runtest(self):
        raise CircSpecInvalid(self.error.render())

    def repr_failure(self, excinfo):
        return str(excinfo.value)

    def reportinfo(self):
        return self.path, None, "circ check"


class CircSpecInvalid(Exception):
    pass


class ClaimRefuted(Exception):
    pass


class _HypothesisRunner:
    """Runs one hypothesis once, on demand, for all of its claim items.

    A run that fails (training diverged, no CUDA device) fails every item with
    the same message, and is not retried for each of them.
    """

    def __init__(self, config, spec, name: str):
        self.config, self.spec, self.name = config, spec, name
        self._result = None
        self._error = None

    def run(self):
        from circuitdsl.diagnostics import CircError

        if self._error is not None:
            raise ClaimRefuted(self._error)
        if self._result is None:
            from circuitdsl.build.models import resolve_device
            from circuitdsl.store.cache import Cache
            from circuitdsl.verification.run import verify_hypothesis_over_seeds

            try:
                cache = Cache(self.config.getoption("--circ-cache-dir"))
                device = resolve_device(self.config.getoption("--circ-device"))
                self._result = verify_hypothesis_over_seeds(
                    self.spec, self.spec.hypotheses[self.name], cache, device=device, explain=False
                )
            except CircError as err:
                self._error = f"hypothesis `{self.name}` could not be verified:\n{err.render()}"
                raise ClaimRefuted(self._error) from None
        return self._result


class ClaimItem(pytest.Item):
    def __init__(self, *, runner: _HypothesisRunner, claim_id: str, text: str, **kwargs):
        super().__init__(**kwargs)
        self.runner, self.claim_id, self.text = runner, claim_id, text

    def runtest(self):
        from circuitdsl.report.verdicts import fmt_interval, fmt_number
        from circuitdsl.verification.verdict import FAIL

        claim = self.runner.run().claim(self.claim_id)
        v = claim.verdict
        detail = f"measured {fmt_number(v.measured)} {fmt_interval(v.interval)}, threshold {v.threshold}".strip()
        strict = self.config.getoption("--circ-strict")
        if claim.status == FAIL:
            raise ClaimRefuted(f"refuted: {v.claim}\n  {detail}\n  evidence: {v.evidence.get('summary', '') if v.evidence else ''}")
        if claim.fails(strict):
            why = "vacuous (holds on an untrained model too)" if claim.vacuous else "inconclusive"
            raise ClaimRefuted(f"{why}: {v.claim}\n  {detail}")

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, ClaimRefuted):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, None, f"{self.name} ({self.text})"
