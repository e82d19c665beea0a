"""snnsim: spiking neural networks (DSR, Dspike) run by an event-driven Rust engine and a torch
reference that agree spike for spike, with exact operation counts and energy estimates.

Quick start (a network built by hand; trained networks come from ``snnsim.export``)::

    import numpy as np
    import snnsim
    rng = np.random.default_rng(0)
    w1 = rng.normal(0.0, 0.3, (16, 8)).astype(np.float32)
    images = rng.random((4, 8), dtype=np.float32)
    g = snnsim.Graph(input_shape=(8,))
    g.linear("fc1", "input", w1)
    g.dsr_if("sn1", "fc1", theta=1.0, fire=0.5)
    g.set_output("sn1")
    snnsim.save(g, "net.snn.safetensors")
    res = snnsim.run("net.snn.safetensors", images, steps=8)   # Rust engine
    print(res.summary())
    print(snnsim.energy(res, g).summary())

The command line: ``snnsim --help`` (:mod:`snnsim.cli`). Reports: :mod:`snnsim.report`;
checks against the reference and the trained torch model: :mod:`snnsim.verify`.
The native engine (``snnsim._core``) is imported only when a network is run in it.
"""

from __future__ import annotations

from importlib import metadata as _metadata
from typing import Any

from .api import Model, Stream, load, run
from .energy import CostTable, EnergyReport, ModelInfo, energy
from .errors import InputError, LimitError, ModelError, NumericError, SnnsimError
from .graph import Graph, Node
from .limits import memory_limit, set_memory_limit
from .model_file import save
from .result import Counts, RunResult

try:
    __version__: str = _metadata.version("snnsim")
except _metadata.PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.1.0"


_LAZY_MODULES = ("cli", "data", "exporter", "models", "report", "train", "verify")


def __getattr__(name: str) -> Any:
    # export() needs torch and the training layer: imported on first use, not with snnsim.
    if name in ("export", "ExportError", "load_trained"):
        from . import exporter

        return getattr(exporter, name)
    if name == "torch_spikes":
        from .verify import torch_spikes

        return torch_spikes
    if name in _LAZY_MODULES:
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'snnsim' has no attribute {name!r}")


__all__ = [
    "CostTable",
    "ExportError",
    "Counts",
    "EnergyReport",
    "Graph",
    "InputError",
    "LimitError",
    "Model",
    "ModelError",
    "ModelInfo",
    "Node",
    "NumericError",
    "RunResult",
    "SnnsimError",
    "Stream",
    "__version__",
    "energy",
    "export",
    "load",
    "load_trained",
    "memory_limit",
    "run",
    "save",
    "set_memory_limit",
    "torch_spikes",
]
