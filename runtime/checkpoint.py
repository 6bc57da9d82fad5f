"""Models to bytes and back: safetensors for tensors, JSON for everything else.

Never pickle: a checkpoint from a shared cache or a colleague is data, and
loading it must not be able to run code.
"""

from __future__ import annotations

import dataclasses
import json

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor

from .model import ModelConfig, SparseGPT
from .tokenizer import Tokenizer


def config_to_json(config: ModelConfig) -> dict:
    return dataclasses.asdict(config)


def config_from_json(data: dict) -> ModelConfig:
    return ModelConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def model_to_bytes(model: SparseGPT, tokenizer: Tokenizer) -> bytes:
    """Weights as safetensors, with the config and vocabulary in its metadata.

    The same weights give the same bytes, whatever order the state dict lists them in.
    """
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in model.state_dict().items()}
    metadata = {"config": json.dumps(config_to_json(model.config), sort_keys=True), "tokenizer": tokenizer.to_json()}
    return canonical_safetensors(st_save(tensors, metadata=metadata))


def model_from_bytes(data: bytes, device: str | torch.device = "cpu") -> tuple[SparseGPT, Tokenizer]:
    """Rebuild a model saved by ``model_to_bytes``; raises ValueError when the data is not one."""
    try:
        tensors = st_load(data)
        metadata = _metadata(data)
        config = config_from_json(json.loads(metadata["config"]))
        tokenizer = Tokenizer.from_json(metadata["tokenizer"])
    except Exception as err:  # safetensors raises its own error types
        raise ValueError(f"not a circuitdsl checkpoint: {err}") from None
    model = SparseGPT(config)
    model.load_state_dict(tensors)
    return model.to(device).eval(), tokenizer


def tensors_to_bytes(tensors: dict[str, Tensor]) -> bytes:
    return canonical_safetensors(st_save({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}))


def canonical_safetensors(data: bytes) -> bytes:
    """The same safetensors file with its header in one canonical form, so equal tensors give equal bytes.

    safetensors writes ``__metadata__`` from a Rust ``HashMap``, whose key order
    changes from call to call, and leaves the order of tensors to its version.
    Here the header's keys are sorted, the tensors laid out by falling element
    size and then by name (each stays aligned to its element size), and the
    header padded with spaces to a multiple of 8 bytes, as the format asks.
    """
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    body = memoryview(data)[8 + size :]
    metadata = header.pop("__metadata__", None)

    def item_size(name: str) -> int:
        begin, end = header[name]["data_offsets"]
        count = 1
        for dim in header[name]["shape"]:
            count *= dim
        return (end - begin) // count if count else 1

    layout: dict = {} if metadata is None else {"__metadata__": dict(sorted(metadata.items()))}
    chunks, offset = [], 0
    for name in sorted(header, key=lambda name: (-item_size(name), name)):
        begin, end = header[name]["data_offsets"]
        chunks.append(body[begin:end])
        layout[name] = {"dtype": header[name]["dtype"], "shape": header[name]["shape"], "data_offsets": [offset, offset + end - begin]}
        offset += end - begin
    text = json.dumps(layout, separators=(",", ":"), sort_keys=True).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + b"".join(chunks)


def tensors_from_bytes(data: bytes) -> dict[str, Tensor]:
    return st_load(data)


def _metadata(data: bytes) -> dict[str, str]:
    # The safetensors header: 8-byte little-endian length, then JSON.
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    return header.get("__metadata__", {})
