"""Activation statistics of candidate units: ``mean``, ``sign``, ``corr``, ``selectivity``.

Each is measured on one shared set of fresh task samples, over *rows*: the
positions the statistic reads, narrowed by its ``| condition``.

* ``at: answer`` or no ``at:`` reads the answer position; ``at: -k`` the
  k-th position before it (rows too short have none).
* Without ``at:``, a condition that mentions ``token`` reads *every* real
  position where it holds (``mean(act | token == "[")`` averages over all
  the brackets of every prompt); ``token`` is the token at that position.
* ``corr(act, v)`` pairs the activation with a latent variable (or a
  condition's 0/1) of the row's sample.

A head's activation is the L2 norm of its circuit channels (q, k and v) at
the position: how strongly the head is engaged there.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from runtime.probe import positions
from runtime.relations import parse_head
from runtime.stats import Estimate, mean_interval, pearson, selectivity

from circuitdsl.syntax import ast as n
from circuitdsl.syntax.formatter import format_expr
from circuitdsl.verification.conditions import position_mask, uses_token, variable_values
from circuitdsl.verification.errors import CheckerGap, VerifyError
from circuitdsl.verification.samples import Samples


def _sign(x: float) -> float:
    return math.nan if math.isnan(x) else float((x > 0) - (x < 0))


class Statistics:
    """Statistics of units on one set of samples; ``acts`` gives a unit's (N, T) activations."""

    def __init__(self, samples: Samples, acts: dict[str, Tensor], confidence: float):
        self.samples = samples
        self.acts = acts
        self.confidence = confidence
        self._rows: dict[str, tuple] = {}
        self._cache: dict[tuple[str, str], Estimate] = {}

    def estimate(self, call: n.Call, unit: str) -> Estimate:
        key = (format_expr(call), unit)
        if key not in self._cache:
            self._cache[key] = self._estimate(call, unit)
        return self._cache[key]

    def _estimate(self, call: n.Call, unit: str) -> Estimate:
        if unit not in self.acts:
            raise VerifyError(f"no activations were recorded for {unit}")
        act = self.acts[unit]  # (N, T)
        rows, extra = self._row_masks(call)
        if call.func in ("mean", "sign"):
            est = mean_interval(act[rows], self.confidence)
            if call.func == "sign":
                return Estimate(_sign(est.value), _sign(est.low), _sign(est.high), est.n)
            return est
        if call.func == "corr":
            return pearson(act[rows], extra[rows], self.confidence)
        if call.func == "selectivity":
            a, b = extra
            return selectivity(act[a], act[b], self.confidence)
        raise CheckerGap(f"unknown statistic `{call.func}`")

    def _row_masks(self, call: n.Call):
        """The rows a statistic reads, and what else it needs there (the same for every unit)."""
        key = format_expr(call)
        if key not in self._rows:
            self._rows[key] = self._build_rows(call)
        return self._rows[key]

    def _build_rows(self, call: n.Call):
        positional = [a for a in call.args if a.name is None]
        given = positional[0].given if positional else None
        rest = [a.value for a in positional[1:]]
        conditions = [given] + [e for e in rest if not isinstance(e, n.Name)]
        where = positions(self.samples.batch, offset_of(call, conditions))
        rows = position_mask(given, self.samples, where)
        if call.func == "corr":
            (other,) = rest
            if isinstance(other, n.Name):
                values = variable_values(other.id, self.samples)[:, None].expand(rows.shape)
            else:
                values = position_mask(other, self.samples, rows).double()
            return rows, values
        if call.func == "selectivity":
            first, second = rest
            return rows, (position_mask(first, self.samples, rows), position_mask(second, self.samples, rows))
        return rows, None


def offset_of(call: n.Call, conditions: list[n.Expr | None]) -> int | None:
    """The position a statistic reads, as ``runtime.probe.positions`` takes it."""
    at = call.keyword("at")
    if at is None:
        return None if any(uses_token(c) for c in conditions) else 0
    if isinstance(at, n.Name) and at.id == "answer":
        return 0
    return int(at.value)  # lowered: the checker folded it to a number


def unit_activations(unit: str, recorded: dict[str, Tensor], heads: dict[str, tuple[str, ...]]) -> Tensor:
    """(N, T): a node's recorded activations, or a head's norm over its circuit channels."""
    if parse_head(unit) is None:
        return recorded[unit]
    channels = torch.stack([recorded[c] for c in heads[unit]], dim=-1)  # (N, T, k)
    return channels.pow(2).sum(-1).sqrt()
