"""A SparseGPT with hand-set weights whose circuit is known: ground truth for pruning.

The task is quote closing in miniature. A prompt is a name, ``=``, a quote,
then letters; the answer is the quote that opened the string::

    prompt  "ab='cfe"   answer "'"      prompt  'h="gda'   answer '"'

Residual channels (d_model 8), as the embeddings set them::

    0 QUOTE   1 on both quotes
    1 TYPE    +1 on ', -1 on "; +-0.5 on letters, so that a head that
              averages over the string instead of finding the quote is wrong
    2 OUT     written by the layer-1 MLP, read by the unembedding
    3 ONE     1 on every token
    4 COPY    written by head 0 of layer 0
    5 LETTER  +-1 on letters (a distractor signal)
    6 NOISE   written by the distractors, read by the letters' logits
    7 FILL    pads every embedding to the same norm, so that RMSNorm scales
              all tokens alike and ONE is exactly constant after it

The planted circuit (``PLANTED``): head 0 of layer 0 attends from every
position to the quote (its key reads QUOTE; its query reads ONE, which is
constant and so costs nothing to mean-ablate) and copies TYPE into COPY;
layer-1 neuron 0 fires on a positive COPY and writes OUT; the unembedding
compares OUT with ONE. Every node of it is necessary under mean ablation and
together they are sufficient (both tested). Distractors (``DISTRACTORS``):
head 1 of both layers and two layer-0 neurons, driven by letters, writing
NOISE and FILL, which reach the logits of letter tokens only.
"""

from __future__ import annotations

import math
import random

import torch

from .batch import Batch, encode_batch
from .model import ModelConfig, SparseGPT
from .tokenizer import Tokenizer

QUOTE, TYPE, OUT, ONE, COPY, LETTER, NOISE, FILL = range(8)
LETTERS = "abcdefgh"
TOKENIZER = Tokenizer(list(LETTERS) + ["=", "'", '"'])
CONFIG = ModelConfig(
    vocab_size=len(TOKENIZER),
    n_layer=2,
    d_model=8,
    n_head=2,
    d_head=4,
    d_mlp=8,
    context=16,
    density=1.0,  # the weights below are sparse by construction
    act_topk=1.0,  # no AbsTopK: every planted unit is on where the construction says
)

PLANTED = (
    "0.attn.resid_in[0]",  # QUOTE, read by the key
    "0.attn.resid_in[1]",  # TYPE, read by the value
    "0.attn.k[0]",
    "0.attn.v[0]",
    "0.attn.resid_delta[4]",  # COPY
    "1.mlp.resid_in[4]",
    "1.mlp.post_act[0]",
    "1.mlp.resid_delta[2]",  # OUT
)
DISTRACTORS = (
    "0.attn.resid_in[5]",
    "0.attn.k[4]",
    "0.attn.v[4]",
    "0.attn.resid_delta[6]",
    "0.mlp.resid_in[1]",
    "0.mlp.resid_in[5]",
    "0.mlp.post_act[1]",
    "0.mlp.post_act[2]",
    "0.mlp.resid_delta[6]",
    "0.mlp.resid_delta[7]",
    "1.attn.resid_in[6]",
    "1.attn.k[4]",
    "1.attn.v[4]",
    "1.attn.resid_delta[6]",
)


def planted_model() -> SparseGPT:
    """The hand-set model; every weight not named here is zero, norms are 1, sinks 0."""
    model = SparseGPT(CONFIG, seed=0)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for name, p in model.named_parameters():
            if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
                p.fill_(1.0)
        ids = TOKENIZER.ids
        wte = model.wte.weight  # (V, C); each row's squares sum to 3
        for token in ("<pad>", "<bos>", "="):
            wte[ids[token], ONE], wte[ids[token], FILL] = 1.0, math.sqrt(2.0)
        for quote, sign in (("'", 1.0), ('"', -1.0)):
            wte[ids[quote], QUOTE], wte[ids[quote], TYPE], wte[ids[quote], ONE] = 1.0, sign, 1.0
        for i, letter in enumerate(LETTERS):
            wte[ids[letter], TYPE] = 0.5 if i < 4 else -0.5
            wte[ids[letter], LETTER] = 1.0 if i % 2 == 0 else -1.0
            wte[ids[letter], ONE], wte[ids[letter], FILL] = 1.0, math.sqrt(0.75)

        attn0, mlp0, attn1, mlp1 = (model.blocks[0].attn, model.blocks[0].mlp,
                                    model.blocks[1].attn, model.blocks[1].mlp)
        # Head 0 of layer 0 (channels 0-3): attend to the quote, copy its type.
        attn0.q.weight[0, ONE] = 2.0
        attn0.k.weight[0, QUOTE] = 3.0
        attn0.v.weight[0, TYPE] = 1.0
        attn0.o.weight[COPY, 0] = 1.0
        # Layer 1, neuron 0: on for a single-quoted string only.
        mlp1.fc.weight[0, COPY] = 3.0
        mlp1.proj.weight[OUT, 0] = 0.5
        # Unembedding: ' when OUT is above ONE, " when below.
        model.lm_head.weight[ids["'"], OUT], model.lm_head.weight[ids["'"], ONE] = 8.0, -8.0
        model.lm_head.weight[ids['"'], OUT], model.lm_head.weight[ids['"'], ONE] = -8.0, 8.0

        # Distractors: letter-driven signals that reach the letters' logits only.
        attn0.q.weight[4, ONE] = 1.0
        attn0.k.weight[4, LETTER] = 2.0
        attn0.v.weight[4, LETTER] = 1.0
        attn0.o.weight[NOISE, 4] = 0.5
        mlp0.fc.weight[1, LETTER] = 1.0
        mlp0.proj.weight[NOISE, 1] = 0.5
        mlp0.fc.weight[2, TYPE] = 1.0
        mlp0.proj.weight[FILL, 2] = 0.3
        attn1.q.weight[4, ONE] = 1.0
        attn1.k.weight[4, NOISE] = 1.0
        attn1.v.weight[4, NOISE] = 1.0
        attn1.o.weight[NOISE, 4] = 0.5
        for letter in LETTERS:
            model.lm_head.weight[ids[letter], NOISE] = 1.0
    return model.eval()


def planted_batch(n: int, seed: int = 0, *, quotes: str = "'\"") -> Batch:
    """``n`` examples of the planted task, e.g. ``ab='cfe`` -> ``'``."""
    rng = random.Random(seed)
    prompts, answers, competitors = [], [], []
    for _ in range(n):
        quote = rng.choice(quotes)
        name = "".join(rng.choice(LETTERS) for _ in range(rng.randint(1, 3)))
        text = "".join(rng.choice(LETTERS) for _ in range(rng.randint(1, 6)))
        prompts.append(f"{name}={quote}{text}")
        answers.append(quote)
        competitors.append(['"' if quote == "'" else "'"])
    return encode_batch(TOKENIZER, prompts, answers, competitors=competitors, context=CONFIG.context)
