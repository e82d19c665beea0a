"""snnsim: spiking neural networks (DSR, Dspike) run by an event-driven Rust engine and a torch
reference that agree spike for spike, with exact operation counts and energy estimates.

Quick start::

    import snnsim
    g = snnsim.Graph(input_shape=(784,))
    g.linear("fc1", "input", w1)
    g.dsr_if("sn1", "fc1", theta=1.0, fire=0.5)
    g.set_output("sn1")
    snnsim.save(g, "net.snn.safetensors")
    res = snnsim.run("net.snn.safetensors", images, steps=8)   # Rust engine
    print(res.summary())
    print(snnsim.energy(res, g).summary())

The native engine (``snnsim._core``) is imported only when a network is run in it.
"""

from __future__ import annotations

from importlib import metadata as _metadata

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


def __getattr__(name: str):  # noqa: ANN202 - module attribute hook
    # export() needs torch and the training layer: imported on first use, not with snnsim.
    if name in ("export", "ExportError"):
        from . import exporter

        return getattr(exporter, name)
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
    "memory_limit",
    "run",
    "save",
    "set_memory_limit",
]
