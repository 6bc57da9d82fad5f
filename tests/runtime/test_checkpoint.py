"""Checkpoints: the same weights give the same bytes (issue 13), and still load.

safetensors writes its ``__metadata__`` from a Rust HashMap, so without
:func:`canonical_safetensors` the key order (and so the bytes and their
SHA-256 in the cache record) changes from one save to the next.
"""

from __future__ import annotations

import dataclasses
import json
from collections import OrderedDict

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from runtime.checkpoint import canonical_safetensors, model_from_bytes, model_to_bytes, tensors_from_bytes, tensors_to_bytes
from runtime.model import ModelConfig, SparseGPT
from runtime.tokenizer import Tokenizer

TOKENIZER = Tokenizer(list("ab'\" =xyz"))


def _model(seed: int = 0) -> SparseGPT:
    config = ModelConfig(vocab_size=len(TOKENIZER), context=16, n_layer=1, d_model=16, n_head=2, d_head=8, d_mlp=32, density=0.25)
    return SparseGPT(config, seed=seed)


def _header(data: bytes) -> tuple[bytes, dict]:
    size = int.from_bytes(data[:8], "little")
    return data[8 : 8 + size], json.loads(data[8 : 8 + size])


def test_saving_the_same_model_again_gives_identical_bytes():
    model = _model()
    saves = {model_to_bytes(model, TOKENIZER) for _ in range(20)}
    assert len(saves) == 1
    assert model_to_bytes(_model(), TOKENIZER) in saves  # a second model with the same weights


def test_the_order_of_the_state_dict_does_not_change_the_bytes():
    model = _model()
    expected = model_to_bytes(model, TOKENIZER)
    state = model.state_dict()
    reordered = _model()
    reordered.state_dict = lambda: OrderedDict(reversed(list(state.items())))  # type: ignore[method-assign]
    assert list(reordered.state_dict()) != list(model.state_dict())
    assert model_to_bytes(reordered, TOKENIZER) == expected


def test_the_header_is_sorted_padded_and_the_data_aligned():
    raw, header = _header(model_to_bytes(_model(), TOKENIZER))
    assert len(raw) % 8 == 0
    assert list(header) == sorted(header)
    assert list(header["__metadata__"]) == sorted(header["__metadata__"])
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        count = 1
        for dim in info["shape"]:
            count *= dim
        if count:
            assert begin % ((end - begin) // count) == 0, name


def test_raw_safetensors_varies_and_canonical_form_does_not():
    tensors = {"b": torch.zeros(3), "a": torch.ones(2, dtype=torch.float16), "c": torch.arange(4)}
    metadata = {"config": "x", "tokenizer": "y", "z": "1", "m": "2"}
    raws = [st_save(tensors, metadata=metadata) for _ in range(20)]
    assert len({canonical_safetensors(raw) for raw in raws}) == 1
    once = canonical_safetensors(raws[0])
    assert canonical_safetensors(once) == once
    back = st_load(once)
    assert all(torch.equal(back[k], v) and back[k].dtype == v.dtype for k, v in tensors.items())


def test_tensor_files_are_canonical_too():
    tensors = {"mask/b": torch.rand(5), "mask/a": torch.rand(3, 2), "count": torch.tensor([1, 2], dtype=torch.int64)}
    data = tensors_to_bytes(tensors)
    assert tensors_to_bytes(dict(reversed(list(tensors.items())))) == data
    assert all(torch.equal(tensors_from_bytes(data)[k], v) for k, v in tensors.items())


def test_a_canonical_checkpoint_loads_to_the_same_model_and_an_old_one_still_loads():
    model = _model().eval()
    tokens = torch.randint(0, len(TOKENIZER), (3, 16))
    loaded, tokenizer = model_from_bytes(model_to_bytes(model, TOKENIZER))
    assert tokenizer == TOKENIZER and torch.equal(model(tokens), loaded(tokens))
    # A checkpoint written before canonical headers (safetensors' own layout).
    old = st_save(
        {k: v.contiguous() for k, v in model.state_dict().items()},
        metadata={"config": json.dumps(dataclasses.asdict(model.config)), "tokenizer": TOKENIZER.to_json()},
    )
    loaded_old, _ = model_from_bytes(old)
    assert torch.equal(model(tokens), loaded_old(tokens))
