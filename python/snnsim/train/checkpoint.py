"""Atomic file writes for checkpoints and metrics: write to a temporary file in the same
directory, flush and fsync it, then ``os.replace`` it over the target, so a crash leaves
either the old file or the new one, never a torn one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_write

__all__ = ["atomic_write", "save_checkpoint", "load_checkpoint", "write_json_atomic"]


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """``torch.save(state)`` to ``path`` atomically."""
    atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (it holds plain python values,
    tensors and state dicts only)."""
    return torch.load(Path(path), map_location=map_location, weights_only=True)


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    text = json.dumps(obj, indent=2, sort_keys=False) + "\n"
    atomic_write(path, lambda f: f.write(text), mode="w")
