"""Exit codes of `circ`, one meaning each and the same for every command (as pytest's ExitCode)."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    #: Everything asked for holds: every file valid, every claim PASS, every circuit reached its target.
    OK = 0
    #: The spec is fine but the answer is no: a claim refuted (or, with --strict, inconclusive or
    #: vacuous), a circuit that missed its target, training that diverged, `fmt --check` would reformat.
    FAILED = 1
    #: Interrupted before an answer: Ctrl-C, or the reader of its output went away (`| head`).
    INTERRUPTED = 2
    #: A bug in circ, not in the spec.
    INTERNAL_ERROR = 3
    #: Nothing ran: the spec is invalid, or the command line is (an unknown option, block or device).
    USAGE = 4


#: The table `--help` and README show.
EXIT_CODES_HELP = (
    "0 ok; 1 refuted (a claim failed, a circuit missed its target, training diverged, a file needs formatting); "
    "2 interrupted; 3 internal error; 4 invalid spec or usage."
)
