"""Exit codes of `circ`, one meaning each (as pytest's ExitCode)."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    #: `circ verify`: a claim was refuted. `circ check`/`fmt --check`: a file is invalid or unformatted.
    FAILED = 1
    #: Bad command-line usage (`circ check`), or interrupted by the user.
    USAGE = 2
    INTERNAL_ERROR = 3
    #: `circ verify` and the runtime commands: the spec is invalid, or the usage is.
    INVALID_SPEC = 4
