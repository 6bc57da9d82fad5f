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
    """Weights as safetensors, with the config and vocabulary in its metadata."""
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in model.state_dict().items()}
    metadata = {"config": json.dumps(config_to_json(model.config)), "tokenizer": tokenizer.to_json()}
    return st_save(tensors, metadata=metadata)


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
    return st_save({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()})


def tensors_from_bytes(data: bytes) -> dict[str, Tensor]:
    return st_load(data)


def _metadata(data: bytes) -> dict[str, str]:
    # The safetensors header: 8-byte little-endian length, then JSON.
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    return header.get("__metadata__", {})
