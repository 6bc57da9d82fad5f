"""The weight-sparse GPT that the runtime trains, prunes and probes.

Read top to bottom: config, AbsTopK, norm, attention, MLP, block, model.

The architecture follows Gao et al. (2025), "Weight-sparse transformers have
interpretable circuits", and its released code: a GPT-2-style pre-norm
decoder whose weight matrices are mostly zero and whose activations pass
through AbsTopK, so that every unit has few connections and is usually off.
The model itself is dense; ``runtime.sparsity`` zeroes its weights after
every optimizer step.

Every activation a circuit can be made of passes through ``_site``: the one
place where AbsTopK is applied and where hooks (``SparseGPT.hooks``) record or
replace it. Site names are defined in ``runtime.nodes``.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .nodes import SITE_KINDS, did_you_mean, site_width, sites

# A hook gets a site's activation (B, T, width) and returns its replacement,
# or None to leave it as it is (so a recorder is just ``acts.append``).
Hook = Callable[[Tensor], "Tensor | None"]


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    vocab_size: int
    n_layer: int = 2
    d_model: int = 64
    n_head: int = 4
    # Independent of d_model / n_head: circuits are read channel by channel,
    # so head width is a capacity knob, not a way of splitting d_model.
    d_head: int = 16
    d_mlp: int = 256
    context: int  # longest sequence, in tokens
    # Fraction of each sparsified matrix left nonzero. 1/16 leaves about 4
    # inputs per unit at d_model 64: few enough that a unit's connections can
    # be read one by one.
    density: float = 1 / 16
    # Fraction of units AbsTopK keeps at each site in topk_sites; 1 turns it
    # off. At 1/4 most units are off on any one token, so a unit that is on
    # carries a specific signal.
    act_topk: float = 0.25
    # Lets a head attend to nothing instead of spreading attention over
    # irrelevant tokens, which would put spurious edges in its circuit.
    sinks: bool = True
    # Off as in the paper's models: causal attention can already infer
    # position, and a dense position vector would feed every residual channel.
    positional: bool = False
    # Off by default although the release has it: a dense token -> next-token
    # path that pruning does not see, so with it on a circuit can look smaller
    # than the computation that actually produces the answer.
    bigram: bool = False
    # Embeddings and unembedding stay dense: a tiny model whose embeddings are
    # sparsified like its hidden matrices can collapse to chance.
    sparsify_embeddings: bool = False
    # Each output row (unit) keeps at least this many nonzero weights. A row
    # the global top-k empties could only regrow by beating the cut in a
    # single optimizer step, so in practice the unit would be dead for good.
    # 1 is the least that prevents this; more would reserve rows * min_live
    # of a small budget before magnitude decides (1 already reserves 256 of
    # the 1024 weights of the MLP's 256 x 64 input matrix at density 1/16).
    min_live_per_row: int = 1
    topk_sites: tuple[str, ...] = SITE_KINDS

    def __post_init__(self):
        for name in ("vocab_size", "n_layer", "d_model", "n_head", "d_head", "d_mlp", "context"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("density", "act_topk"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)}")
        if self.min_live_per_row < 0:
            raise ValueError(f"min_live_per_row must be >= 0, got {self.min_live_per_row}")
        object.__setattr__(self, "topk_sites", tuple(self.topk_sites))  # a list from a parsed spec, too
        for kind in self.topk_sites:
            if kind not in SITE_KINDS:
                raise ValueError(f"unknown site kind {kind!r} in topk_sites{did_you_mean(kind, SITE_KINDS)}")


def abs_topk(x: Tensor, k: int) -> Tensor:
    """Keep the k entries of largest |x| along the last dim; zero the rest."""
    idx = x.abs().topk(k, dim=-1, sorted=False).indices
    return torch.zeros_like(x).scatter(-1, idx, x.gather(-1, idx))


class _Softmax(torch.autograd.Function):
    """Softmax over the last dim whose gradient does not depend on the thread count.

    PyTorch's own CPU softmax backward gives results that differ in the last
    bits between 1 and 2 intra-op threads, so the same seed trained a
    different model on a different machine (and, downstream, a different
    circuit). This backward, y * (g - sum(g * y)), is made of ops that reduce
    each row in one fixed order.
    """

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        y = x.softmax(-1)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        return y * (grad - (grad * y).sum(-1, keepdim=True))


def softmax(x: Tensor) -> Tensor:
    """``x.softmax(-1)``, with a backward that is the same for any number of threads."""
    return _Softmax.apply(x)


class RMSNorm(nn.Module):
    # No mean subtraction, unlike LayerNorm: a residual channel that is zero
    # stays zero after the norm, so "off" keeps its meaning for the next layer.

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class _Sited(nn.Module):
    """A module whose activations are sites: AbsTopK first, then any hook."""

    def __init__(self, config: ModelConfig, layer: int, part: str, hooks: dict[str, Hook]):
        super().__init__()
        self.prefix = f"{layer}.{part}."
        self.hooks = hooks  # the model's dict, filled and emptied by SparseGPT.hooks
        self.topk: dict[str, int] = {}  # site name within the part -> k
        if config.act_topk < 1:
            for kind in config.topk_sites:
                if kind.startswith(part + "."):
                    k = max(1, round(config.act_topk * site_width(config, kind)))
                    self.topk[kind.split(".")[1]] = k

    def _site(self, name: str, x: Tensor) -> Tensor:
        # name is within the part ("q"); hooks are keyed by the full site name ("1.attn.q").
        k = self.topk.get(name)
        if k is not None:
            x = abs_topk(x, k)
        if self.hooks:
            hook = self.hooks.get(self.prefix + name)
            if hook is not None:
                y = hook(x)
                if y is not None:
                    x = y
        return x


# In answer_pos mode the last layer's attention runs only the answer queries,
# from this many positions on (below it the saving is nothing, and for 5 or 6
# rows MKL's kernel rounds unlike the 4-row one), as this many rows.
_ANSWER_ROWS_FROM = 8
_ANSWER_QUERY_ROWS = 4


class CausalSelfAttention(_Sited):
    def __init__(self, config: ModelConfig, layer: int, hooks: dict[str, Hook]):
        super().__init__(config, layer, "attn", hooks)
        self.n_head, self.d_head = config.n_head, config.d_head
        width = config.n_head * config.d_head
        # Separate matrices, not one fused qkv: each gets its own weight budget.
        self.q = nn.Linear(config.d_model, width, bias=False)
        self.k = nn.Linear(config.d_model, width, bias=False)
        self.v = nn.Linear(config.d_model, width, bias=False)
        self.o = nn.Linear(width, config.d_model, bias=False)
        self.sink = nn.Parameter(torch.zeros(config.n_head)) if config.sinks else None
        mask = torch.full((config.context, config.context), float("-inf")).triu(1)
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: Tensor, answer_pos: Tensor | None = None) -> Tensor:
        """(B, T, C) -> (B, T, C). With answer_pos (B,), only those positions'
        queries attend and every other position's output is 0."""
        B, T, _ = x.shape
        H, D = self.n_head, self.d_head
        x = self._site("resid_in", x)  # (B, T, C)
        q = self._site("q", self.q(x))  # (B, T, H*D)
        k = self._site("k", self.k(x))
        v = self._site("v", self.v(x))
        q, k, v = (t.view(B, T, H, D).transpose(1, 2) for t in (q, k, v))  # (B, H, T, D)
        answers_only = answer_pos is not None and T >= _ANSWER_ROWS_FROM
        if answers_only:
            # Each answer query repeated to 4 rows: MKL's batched matmul then picks
            # the kernel it uses for T rows, whose sums come out bit for bit the
            # same at the shipped model's shape (a single row goes to another
            # kernel, which rounds otherwise), so that model trains to the weights
            # its claims were derived on. tests/runtime/test_model.py checks the
            # bits; other shapes may differ in the last bit.
            rows = torch.arange(B, device=x.device)
            Q, mask = _ANSWER_QUERY_ROWS, self.mask[answer_pos, :T].view(B, 1, 1, T)
            q = q[rows, :, answer_pos].unsqueeze(2).expand(B, H, Q, D).contiguous()  # (B, H, Q, D)
        else:
            Q, mask = T, self.mask[:T, :T]
        att = q @ k.transpose(-2, -1) / math.sqrt(D) + mask  # (B, H, Q, T)
        if self.sink is None:
            att = softmax(att)
        else:
            # The sink is one more key, visible to every query, whose value is
            # zero: it takes attention away from the real keys, adds nothing.
            sink = self.sink.view(1, H, 1, 1).expand(B, H, Q, 1)
            att = softmax(torch.cat([att, sink], dim=-1))[..., :T]  # (B, H, Q, T)
        y = att @ v  # (B, H, Q, D)
        if answers_only:
            # Back to (B, T, ...) with zeros elsewhere, so o and the sites see the
            # shapes, and o's weight gradient the sums, of every query attending.
            y, answers = y.new_zeros(B, T, H, D), y[:, :, 0]
            y[rows, answer_pos] = answers
        else:
            y = y.transpose(1, 2)
        return self._site("resid_delta", self.o(y.reshape(B, T, H * D)))  # (B, T, C)


class MLP(_Sited):
    # GELU, not ReLU: a unit with only a few live inputs is easily pushed
    # negative on every example, and under ReLU it would then get no gradient
    # and stay dead; AbsTopK already supplies the exact zeros.

    def __init__(self, config: ModelConfig, layer: int, hooks: dict[str, Hook]):
        super().__init__(config, layer, "mlp", hooks)
        self.fc = nn.Linear(config.d_model, config.d_mlp, bias=False)
        self.proj = nn.Linear(config.d_mlp, config.d_model, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        x = self._site("resid_in", x)  # (B, T, C)
        h = self._site("post_act", F.gelu(self.fc(x)))  # (B, T, d_mlp)
        return self._site("resid_delta", self.proj(h))  # (B, T, C)


class Block(nn.Module):
    def __init__(self, config: ModelConfig, layer: int, hooks: dict[str, Hook]):
        super().__init__()
        self.ln_1 = RMSNorm(config.d_model)
        self.attn = CausalSelfAttention(config, layer, hooks)
        self.ln_2 = RMSNorm(config.d_model)
        self.mlp = MLP(config, layer, hooks)

    def forward(self, x: Tensor, answer_pos: Tensor | None = None) -> Tensor:
        x = x + self.attn(self.ln_1(x), answer_pos)  # (B, T, C)
        if answer_pos is not None:
            # Called so only for the last layer, whose output is read at the
            # answer positions alone: only their queries attend (above), and
            # the MLP only needs them.
            x = x[torch.arange(x.size(0), device=x.device), answer_pos].unsqueeze(1)  # (B, 1, C)
        return x + self.mlp(self.ln_2(x))


class SparseGPT(nn.Module):
    """Decoder over right-padded token batches; see the module docstring.

    Initial weights depend only on ``seed``, never on the global RNG.
    """

    def __init__(self, config: ModelConfig, seed: int = 0):
        super().__init__()
        self.config = config
        self.site_names = tuple(site.name for site in sites(config))
        self._hooks: dict[str, Hook] = {}  # shared with every block; empty = no cost
        self.wte = nn.Embedding(config.vocab_size, config.d_model)
        self.wpe = nn.Embedding(config.context, config.d_model) if config.positional else None
        self.blocks = nn.ModuleList(Block(config, layer, self._hooks) for layer in range(config.n_layer))
        self.ln_f = RMSNorm(config.d_model)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)  # untied from wte
        # Zero-initialised so the model starts with no bigram prior.
        bigram = nn.Parameter(torch.zeros(config.vocab_size, config.vocab_size)) if config.bigram else None
        self.register_parameter("bigram", bigram)
        self._init_weights(seed)

    @torch.no_grad()
    def _init_weights(self, seed: int) -> None:
        gen = torch.Generator().manual_seed(seed)
        # GPT-2's init; each residual write is scaled down so the stream's
        # variance does not grow with depth.
        residual_std = 0.02 / math.sqrt(2 * self.config.n_layer)
        for module_name, module in self.named_modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                std = residual_std if module_name.endswith(("attn.o", "mlp.proj")) else 0.02
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * std)

    def forward(self, tokens: Tensor, answer_pos: Tensor | None = None) -> Tensor:
        """Logits (B, T, V) for tokens (B, T); with answer_pos (B,), logits (B, V) there.

        Padding must be on the right: attention is causal, so pads never reach
        real positions. With answer_pos only the answer positions' queries
        attend in the last layer, whose attention output is 0 elsewhere, and
        its MLP runs only there, so the MLP's hooks see (B, 1, width)
        activations; the result equals full-mode logits gathered at
        answer_pos (to rounding: the matmuls see fewer rows).
        """
        B, T = tokens.shape
        if T > self.config.context:
            raise ValueError(f"sequence of {T} tokens exceeds the context of {self.config.context}")
        x = self.wte(tokens)  # (B, T, C)
        if self.wpe is not None:
            x = x + self.wpe.weight[:T]
        for block in self.blocks[:-1]:
            x = block(x)
        x = self.blocks[-1](x, answer_pos)  # (B, T, C), or (B, 1, C) with answer_pos
        if answer_pos is not None:
            tokens = tokens[torch.arange(B, device=tokens.device), answer_pos].unsqueeze(1)  # (B, 1)
        logits = self.lm_head(self.ln_f(x))  # (B, T or 1, V)
        if self.bigram is not None:
            logits = logits + self.bigram[tokens]
        return logits if answer_pos is None else logits.squeeze(1)

    @contextmanager
    def hooks(self, mapping: Mapping[str, Hook]) -> Iterator[SparseGPT]:
        """Install ``{site_name: fn}`` for the duration of a ``with`` block.

        ``fn`` gets the site's activation (B, T, width), after AbsTopK, and
        returns a replacement, or None to leave it. In answer_pos mode the
        last layer's mlp sites get (B, 1, width), and its attn.resid_delta
        is 0 away from the answer positions. Nested installs on the same
        site chain: the inner hook sees what the outer one returned.
        """
        for name in mapping:
            if name not in self.site_names:
                raise KeyError(f"unknown site {name!r}{did_you_mean(name, self.site_names)}")
        saved = dict(self._hooks)
        for name, fn in mapping.items():
            self._hooks[name] = fn if name not in saved else _chain(saved[name], fn)
        try:
            yield self
        finally:
            self._hooks.clear()
            self._hooks.update(saved)


def _chain(first: Hook, then: Hook) -> Hook:
    def hook(x: Tensor) -> Tensor:
        y = first(x)
        x = x if y is None else y
        z = then(x)
        return x if z is None else z

    return hook
