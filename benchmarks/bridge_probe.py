"""Why a bridged intervention fails: can the bridge read and write a sparse channel?

``specs/quote_bridge.circ`` sets the sparse model's layer-1 quote channels to their
single-quote values and carries the change into the dense model through the bridge:
the encoder reads the channels off the dense stream, the edit is made there, and the
difference of the two decodings is added to the dense stream. This script measures,
on the shipped models and bridge (from the cache, trained and fitted when missing),
on double-quote strings at the answer position:

1. the encoder: each channel's single-quote mean and its correlation with the sparse
   model's own channel, as the encoder reads it off the dense stream;
2. the edit in the sparse model's own stream (the channels set to the sparse model's
   single-quote means): how far it moves the sparse model's p(');
3. the verifier's edit (encoded means, encoded current values): the dense p(');
4. the sparse model's own change carried by the decoder alone (its single-quote means
   minus its values on the same prompt, times the decoder's columns), and a random
   direction of the same norm: the dense p('); and how large each change is against
   the stream it is added to.

Run from the repository root (CIRC_CACHE as for ``circ``):

    python benchmarks/bridge_probe.py [--samples 1000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from circuitdsl.build.bridges import ensure_bridge  # noqa: E402
from circuitdsl.build.models import ensure_model  # noqa: E402
from circuitdsl.pipeline import check_spec  # noqa: E402
from circuitdsl.spec.plan import plan_bridge, plan_training  # noqa: E402
from circuitdsl.store.cache import Cache  # noqa: E402
from circuitdsl.tasks.data import task_batch  # noqa: E402
from runtime.bridge import channel_values, edited_logits, node_boundary, run  # noqa: E402
from runtime.probe import positions  # noqa: E402

SPEC = "specs/quote_bridge.circ"
HYPOTHESIS = "quote_type_through_bridge"
#: The three channels the spec's role binds on the shipped circuit (its comments).
NODES = ("1.attn.resid_in[17]", "1.attn.resid_delta[21]", "1.attn.resid_delta[39]")


def p_single(logits: torch.Tensor, token: int) -> float:
    return float(logits.softmax(-1)[:, token].mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    args = parser.parse_args()
    torch.set_num_threads(2)

    spec = check_spec(SPEC)
    hyp = spec.hypotheses[HYPOTHESIS]
    cache = Cache()
    training = plan_training(spec.tasks, spec.vocab, hyp.prune.train)
    sparse = ensure_model(training, cache)
    (bridge_spec,) = hyp.bridges.values()
    dense_plan = plan_training(spec.tasks, spec.vocab, bridge_spec.dense)
    dense = ensure_model(dense_plan, cache)
    bridge = ensure_bridge(plan_bridge(bridge_spec, dense_plan, training), dense, sparse.model, cache).bridge
    tokenizer = sparse.tokenizer
    quote = tokenizer.token_id("'")

    batch, examples = task_batch(spec.tasks["quote_close"], args.samples, seed="bridge-probe", tokenizer=tokenizer, side="eval")
    single = torch.tensor([e.latents["q"] == "'" for e in examples])
    rows = torch.arange(len(batch))
    pos = batch.answer_pos
    with torch.no_grad():
        _, sparse_streams = run(sparse.model, batch.tokens)
        _, dense_streams = run(dense.model, batch.tokens)
    channels = [node_boundary(node) for node in NODES]

    print(f"{len(batch)} samples, {int(single.sum())} single-quoted; channels {', '.join(NODES)}")
    print("\n1. the encoder, at the answer position")
    print("| channel | sparse single-quote mean | encoded single-quote mean | correlation, encoded vs sparse |")
    print("|---|---|---|---|")
    # The verifier's targets: each channel's single-quote mean in the bridge's encoded space.
    answer_rows = positions(batch, 0) & single[:, None]
    sparse_means = {}
    with torch.no_grad():
        encoded_means = channel_values(bridge, dense.model, batch, NODES, answer_rows)
        for node, (i, c) in zip(NODES, channels):
            actual = sparse_streams[i][rows, pos, c]
            encoded = bridge.encode(i, dense_streams[i])[rows, pos, c]
            sparse_means[node] = float(actual[single].mean())
            corr = float(torch.corrcoef(torch.stack([actual, encoded]))[0, 1])
            print(f"| {node} | {sparse_means[node]:.3f} | {encoded_means[node]:.3f} | {corr:.3f} |")

    double = ~single
    sub = rows[double]
    tokens, at = batch.tokens[double], pos[double]

    def edits_from(deltas_by_boundary, random: torch.Generator | None = None):
        def make(i, delta):
            def edit(h):
                change = torch.zeros_like(h)
                d = delta
                if random is not None:
                    noise = torch.randn(delta.shape, generator=random)
                    d = noise / noise.norm(dim=-1, keepdim=True) * delta.norm(dim=-1, keepdim=True)
                change[torch.arange(len(h)), at] = d
                return h + change
            return edit
        return {i: make(i, d) for i, d in deltas_by_boundary.items()}

    with torch.no_grad():
        dense_base, _ = run(dense.model, tokens, answer_pos=at)
        sparse_base, _ = run(sparse.model, tokens, answer_pos=at)
        # 2. the sparse model's own stream, its channels set to its single-quote means
        own: dict[int, torch.Tensor] = {}
        for node, (i, c) in zip(NODES, channels):
            d = own.setdefault(i, torch.zeros(len(sub), sparse.model.config.d_model))
            d[:, c] += sparse_means[node] - sparse_streams[i][sub, at, c]
        sparse_moved, _ = run(sparse.model, tokens, edits_from(own), answer_pos=at)
        # 3. the verifier's own edit: encode, set to the encoded means, decode the difference
        doubles = batch.select(sub)
        dense_verifier = edited_logits(dense.model, bridge, doubles, encoded_means, positions(doubles, 0))
        # 4. the sparse model's own change through the decoder alone
        decoded = {i: d @ bridge.decoders[i].weight.T for i, d in own.items()}
        dense_decoded, _ = run(dense.model, tokens, edits_from(decoded), answer_pos=at)
        generator = torch.Generator().manual_seed(0)
        dense_random, _ = run(dense.model, tokens, edits_from(decoded, generator), answer_pos=at)

    print("\nthe size of each change against the stream it is added to (mean norms at the answer position)")
    print("| boundary | sparse change / sparse stream | decoded change / dense stream |")
    print("|---|---|---|")
    for i in sorted(own):
        ratio_sparse = float((own[i].norm(dim=-1) / sparse_streams[i][sub, at].norm(dim=-1)).mean())
        ratio_dense = float((decoded[i].norm(dim=-1) / dense_streams[i][sub, at].norm(dim=-1)).mean())
        print(f"| {i} | {ratio_sparse:.3f} | {ratio_dense:.3f} |")

    print("\n2-4. p(') on double-quote strings")
    print("| edit | model | p(') before | p(') after |")
    print("|---|---|---|---|")
    print(f"| 2. channels set to the sparse model's single-quote means, in its own stream | sparse | {p_single(sparse_base, quote):.4f} | {p_single(sparse_moved, quote):.4f} |")
    print(f"| 3. the verifier's: encoded means, through encoder and decoder | dense | {p_single(dense_base, quote):.4f} | {p_single(dense_verifier, quote):.4f} |")
    print(f"| 4. the sparse model's own change, through the decoder alone | dense | {p_single(dense_base, quote):.4f} | {p_single(dense_decoded, quote):.4f} |")
    print(f"| 4'. a random direction of the same norm | dense | {p_single(dense_base, quote):.4f} | {p_single(dense_random, quote):.4f} |")


if __name__ == "__main__":
    main()
