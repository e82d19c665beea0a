"""Checkpoints and metrics on disk.

Writes are atomic (:func:`snnsim.atomic.atomic_write`: a temporary file in the same directory,
flushed, fsync'ed and renamed over the target), so a crash leaves either the old file or the
new one, never a torn one. Checkpoints hold plain Python values, tensors and state dicts only
and are read with ``torch.load(..., weights_only=True)``: loading one never runs code from the
file. A file that cannot be read (truncated, corrupt, not a checkpoint) raises
:class:`CheckpointError` naming the file.
"""

from __future__ import annotations

import json
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any, Iterable, Protocol, runtime_checkable

import torch

from ..atomic import atomic_write

__all__ = [
    "Tempered",
    "CheckpointError",
    "atomic_write",
    "save_checkpoint",
    "load_checkpoint",
    "write_json_atomic",
]


@runtime_checkable
class Tempered(Protocol):
    """A model with a Dspike temperature (``DspikeNet``), which checkpoints store beside the
    weights (``"temperature"``). ``isinstance(model, Tempered)`` tests for the attribute."""

    temperature: float | None


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the file."""


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """``torch.save(state)`` to ``path`` atomically."""
    atomic_write(path, lambda f: torch.save(state, f))


_READ_ERRORS = (
    RuntimeError,
    EOFError,
    OSError,
    ValueError,
    pickle.UnpicklingError,
    zipfile.BadZipFile,
    KeyError,
    AttributeError,
    TypeError,
    IndexError,
)


def load_checkpoint(
    path: str | Path,
    map_location: str | torch.device = "cpu",
    required: Iterable[str] = (),
) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` with ``weights_only=True`` (plain
    values, tensors and state dicts only). ``required``: keys the dictionary must hold.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: the file is not a readable checkpoint (truncated, corrupt, another
            kind of file, objects ``weights_only`` refuses) or lacks a ``required`` key.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint {p}: no such file")
    try:
        state = torch.load(p, map_location=map_location, weights_only=True)
    except _READ_ERRORS as exc:
        raise CheckpointError(_read_error(p, exc)) from exc
    if not isinstance(state, dict):
        raise CheckpointError(
            f"checkpoint {p}: holds a {type(state).__name__}, expected a dictionary"
        )
    missing = [k for k in required if k not in state]
    if missing:
        raise CheckpointError(
            f"checkpoint {p}: missing {', '.join(repr(k) for k in missing)} "
            "(not a training checkpoint of snnsim.train)"
        )
    return state


def _read_error(p: Path, exc: BaseException) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()
    refused = [ln.strip() for ln in text.splitlines() if "WeightsUnpickler error" in ln]
    if refused:
        detail = refused[0].split("WeightsUnpickler error:", 1)[1].strip().split(". ")[0]
        return (
            f"checkpoint {p}: refused by weights_only loading ({detail}): it holds Python "
            "objects, not only tensors and plain values, so it is not a snnsim training "
            "checkpoint (torch.load(..., weights_only=False) runs code from the file: only for "
            "files from a trusted source)"
        )
    detail = text.splitlines()[0] if text else type(exc).__name__
    return (
        f"checkpoint {p}: cannot be read ({type(exc).__name__}: {detail}); the file is "
        "truncated, corrupt or not a snnsim checkpoint"
    )


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    text = json.dumps(obj, indent=2, sort_keys=False) + "\n"
    atomic_write(path, lambda f: f.write(text), mode="w")


def effective_config(st: dict[str, Any]) -> dict[str, Any]:
    """The configuration a checkpoint's last epoch was trained with: its start ``config`` with
    the recorded ``config_changes`` applied."""
    cfg = dict(st["config"])
    for ch in st.get("config_changes", []):
        for k, v in ch["changes"].items():
            cfg[k] = v["to"]
    return cfg
