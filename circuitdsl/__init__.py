"""circuitdsl: declarative, checkable circuit hypotheses for weight-sparse transformers.

The pipeline, one stage per module::

    text --parser--> nodes.Module --loader/checker--> program.CheckedSpec --compile--> plan --runtime--> results --report

This package is the language (parsing, checking, messages, CLI, reports). It
never imports torch when parsing or checking; the engine lives in ``runtime``.
"""

__version__ = "0.1.0"
