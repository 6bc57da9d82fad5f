"""The settings each block accepts: type, default, and why that default.

The checker validates blocks against these tables, ``docs/language.md``
documents them, and ``circ show`` prints the resolved values. Defaults follow
the weight-sparse-transformers release where it has one.
"""

from __future__ import annotations

import attrs

# Setting types. Values are evaluated statically by the checker.
POSITIVE_INT = "positive int"
NONNEG_INT = "non-negative int"
POSITIVE_NUMBER = "positive number"
NONNEG_NUMBER = "non-negative number"
FRACTION = "fraction in (0, 1]"
SHARE = "share in [0, 1]"
PROBABILITY = "probability in (0, 1)"
SPAN = "span of training (a..b, as shares)"
BOOL = "bool"
STRING = "string"
TOKENS = "list of strings"
CHARS = "string or `printable`"
MIXTURE = "task, list of tasks, or {task: weight}"
TARGET = "loss bound (loss <= x)"
STOP = "stopping rule (accuracy >= x, or never)"


@attrs.frozen
class Setting:
    type: str
    default: object
    doc: str
    #: For enum-like settings: the names allowed.
    choices: tuple[str, ...] = ()
    #: For references: the block kind referred to.
    ref: str | None = None
    #: Range (inclusive) for numbers; None = unbounded.
    low: float | None = None
    high: float | None = None

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


class _Required:
    def __repr__(self) -> str:
        return "required"


REQUIRED = _Required()
DERIVED = "derived"  # a default computed from other settings (documented in the doc)


def _ref(kind: str, doc: str) -> Setting:
    return Setting(f"name of a {kind}", REQUIRED, doc, ref=kind)


def _enum(default: str, doc: str, *choices: str) -> Setting:
    return Setting("one of " + ", ".join(choices), default, doc, choices=choices)


VOCAB: dict[str, Setting] = {
    "chars": Setting(CHARS, "printable", "single-character tokens: `printable` is ASCII 32-126 plus newline and tab"),
    "tokens": Setting(TOKENS, (), 'multi-character tokens such as "]]"; text is split longest match first'),
}

MODEL: dict[str, Setting] = {
    "layers": Setting(POSITIVE_INT, 2, "transformer blocks", low=1, high=64),
    "d_model": Setting(POSITIVE_INT, 64, "residual stream width", low=1, high=65536),
    "heads": Setting(POSITIVE_INT, 4, "attention heads per layer", low=1, high=1024),
    "d_head": Setting(POSITIVE_INT, DERIVED, "width of each head; default d_model / heads, which must then divide", low=1, high=65536),
    "d_mlp": Setting(POSITIVE_INT, DERIVED, "MLP neurons per layer; default 4 * d_model", low=1, high=1 << 20),
    "context": Setting(POSITIVE_INT, 64, "the most tokens a prompt may have", low=2, high=1 << 20),
    "density": Setting(FRACTION, 1 / 16, "share of each sparsified weight matrix left nonzero (1 = dense)"),
    "act_topk": Setting(FRACTION, 1 / 4, "share of units AbsTopK keeps at each activation site (1 = off)"),
    "sinks": Setting(BOOL, True, "a learnable attention sink per head, so a head can attend to nothing"),
    "positional": Setting(BOOL, False, "learned absolute position embeddings (the paper's models mostly have none)"),
    "bigram": Setting(BOOL, False, "a dense bigram logit table added to the output, as in the release"),
    "sparsify_embeddings": Setting(
        BOOL, False, "sparsify embeddings and unembedding too; tiny models can collapse to chance when they are"
    ),
    "min_live": Setting(
        NONNEG_INT, 1, "nonzero weights every neuron/channel keeps, so no unit dies for good", low=0, high=65536
    ),
}

TRAIN: dict[str, Setting] = {
    "model": _ref("model", "the architecture to train"),
    "tasks": Setting(MIXTURE, REQUIRED, "the tasks to train on, with mixture weights (equal by default)", ref="task"),
    "steps": Setting(POSITIVE_INT, 800, "optimizer steps: all of them, or the most a stopping rule lets run", low=1, high=10**8),
    "stop": Setting(
        STOP, None, "stop once the anneal is done and every task's held-out accuracy reaches x (checked at each evaluation)"
    ),
    "cooldown": Setting(SHARE, 0.0, "share of `steps` over which the rate falls to 0 once `stop` fires"),
    "batch": Setting(POSITIVE_INT, 128, "examples per step", low=1, high=1 << 20),
    "lr": Setting(POSITIVE_NUMBER, 1e-3, "peak learning rate of the sharkfin schedule", low=0),
    "seed": Setting(NONNEG_INT, 0, "seeds weights and data; same seed, same model", low=0, high=2**63 - 1),
    "anneal": Setting(SPAN, (0.01, 0.5), "when density falls linearly from dense to its target"),
    "warmup": Setting(SHARE, 0.01, "share of steps of linear learning-rate warmup"),
    "grad_clip": Setting(POSITIVE_NUMBER, 1.0, "gradients are rescaled to at most this RMS", low=0),
    "weight_decay": Setting(NONNEG_NUMBER, 0.1, "decoupled weight decay on matrices", low=0),
    "beta1": Setting(SHARE, 0.9, "Adam first-moment decay"),
    "beta2": Setting(SHARE, 0.95, "Adam second-moment decay"),
    "eps": Setting(POSITIVE_NUMBER, 1e-8, "Adam epsilon", low=0),
    "loss_on": _enum("answer", "which positions the loss covers", "answer", "all"),
    "eval_examples": Setting(POSITIVE_INT, 1000, "held-out examples per task for evaluation", low=1, high=10**6),
    "eval_every": Setting(POSITIVE_INT, 100, "steps between held-out evaluations, and so between checks of `stop`", low=1, high=10**8),
}

PRUNE: dict[str, Setting] = {
    "train": _ref("train", "the trained model to prune (a train block)"),
    "task": _ref("task", "the task whose circuit is sought"),
    "target": Setting(TARGET, 0.15, "the task loss (nats) the circuit must keep, as in the paper"),
    "ablation": _enum("mean", "how pruned nodes are replaced", "mean", "zero", "resample"),
    "loss": _enum("ce", "the task loss held to the target: full-vocabulary cross-entropy, or the 2-way answer-vs-competitor contrast", "ce", "contrast"),
    "norm": _enum("live", "RMSNorm while ablating: recomputed, or frozen at the unpruned pass's scale", "live", "frozen"),
    "method": _enum("learned", "learned node masks, or attribution scores", "learned", "attribution"),
    "baseline": _enum("attribution", "the method run side by side for comparison", "attribution", "none"),
    "trials": Setting(POSITIVE_INT, 16, "hyperparameter-search trials, trained 4 at a time (the search budget)", low=1, high=10**4),
    "steps": Setting(POSITIVE_INT, 150, "mask-training steps per trial (the search budget)", low=1, high=10**7),
    "batch": Setting(POSITIVE_INT, 64, "examples per mask-training step of each trial", low=1, high=1 << 20),
    "mean_samples": Setting(POSITIVE_INT, 4000, "samples used to compute mean activations", low=1, high=10**7),
    "seed": Setting(NONNEG_INT, 0, "seeds masks, search and data", low=0, high=2**63 - 1),
    "controls": Setting(BOOL, True, "run the nonsense-task and random-model controls"),
}

BRIDGE: dict[str, Setting] = {
    "dense": _ref("train", "the dense model: a train block whose model has density = 1 and act_topk = 1"),
    "sparse": _ref("train", "the weight-sparse model whose circuit explains the dense one"),
    "steps": Setting(POSITIVE_INT, 50, "training steps of the encoders and decoders after their least-squares start", low=1, high=10**7),
    "batch": Setting(POSITIVE_INT, 64, "examples per bridge training step", low=1, high=1 << 20),
    "lr": Setting(POSITIVE_NUMBER, 1e-3, "Adam learning rate of the encoders and decoders", low=0),
    "nmse": Setting(NONNEG_NUMBER, 1.0, "weight of both maps' normalized MSE in the loss", low=0),
    "kl": Setting(NONNEG_NUMBER, 1.0, "weight of the hybrid passes' KL to the dense model in the loss", low=0),
    "seed": Setting(NONNEG_INT, 0, "seeds the bridge's weights and data", low=0, high=2**63 - 1),
    "eval_examples": Setting(POSITIVE_INT, 512, "held-out examples per task that NMSE and KL are reported on", low=1, high=10**6),
}

HYPOTHESIS: dict[str, Setting] = {
    "samples": Setting(POSITIVE_INT, 1000, "fresh task samples per measurement", low=10, high=10**7),
    "seed_share": Setting(SHARE, 1.0, "share of training seeds a claim must hold on (with --seeds)"),
    "confidence": Setting(PROBABILITY, 0.95, "confidence level of the intervals on measured rates"),
}

BLOCKS: dict[str, dict[str, Setting]] = {
    "vocab": VOCAB,
    "model": MODEL,
    "train": TRAIN,
    "prune": PRUNE,
    "bridge": BRIDGE,
    "hypothesis": HYPOTHESIS,
}
