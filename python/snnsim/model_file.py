"""Reading and writing snnsim model files (docs/model-format.md §1).

A model file is one safetensors file: every tensor a node owns is stored as
``"{node_name}.{field}"`` and the graph JSON sits in the metadata under ``"snnsim.graph"``
(with ``"format": "snnsim"``). :func:`save` validates the graph and writes the file atomically;
:func:`load` reads it back and validates it. Every problem with a file is reported as
:class:`~snnsim.errors.ModelError` naming what is wrong (never a raw safetensors or JSON error).

There is one validator, the engine's (``snnsim._core.validate_file``, called by
:mod:`snnsim.container`): :func:`from_bytes` runs it on the bytes before anything else reads
them, and :meth:`Graph.validate` runs it on the bytes a graph is saved as, so Python and the
engine accept exactly the same files.
"""

from __future__ import annotations

import json
import os
from typing import Any

import safetensors.numpy

from .atomic import atomic_write
from .container import (
    FORMAT_KEY,
    FORMAT_VALUE,
    GRAPH_KEY,
    META_KEY,
    META_VERSION,
    check_bytes,
    check_meta,
    encode,
    read_metadata,
)
from .errors import ModelError
from .graph import Graph

__all__ = [
    "FORMAT_KEY",
    "FORMAT_VALUE",
    "GRAPH_KEY",
    "META_KEY",
    "META_VERSION",
    "check_bytes",
    "check_meta",
    "from_bytes",
    "load",
    "save",
    "to_bytes",
    "unchecked_bytes",
]


def unchecked_bytes(graph: Graph) -> bytes:
    """The bytes of the model file of ``graph``, not validated (see :func:`to_bytes`)."""
    return encode(graph.to_json(), graph.tensor_dict(), graph.meta, graph.input_shape)


def to_bytes(graph: Graph) -> bytes:
    """Validate ``graph`` and serialise it to the bytes of a model file (what :func:`save`
    writes; what ``snnsim._core.Model.from_bytes`` compiles)."""
    data = unchecked_bytes(graph)
    check_bytes(data, "graph")
    return data


def save(graph: Graph, path: str | os.PathLike[str]) -> None:
    """Validate ``graph`` and write it to ``path`` as one safetensors file.

    The file is written atomically: the bytes go to a temporary file in the destination's
    directory, which is flushed, fsync'ed and then renamed over ``path`` (``os.replace``). On any
    error (an invalid graph, a full disk) no partial file is left behind and an existing file at
    ``path`` is not touched.
    """
    data = to_bytes(graph)

    def write(f: Any) -> None:
        f.write(data)

    atomic_write(path, write)


def load(path: str | os.PathLike[str]) -> Graph:
    """Read and validate a model file; return its :class:`~snnsim.graph.Graph`.

    Raises :class:`ModelError` for a file that is not a valid snnsim model (truncated, not
    safetensors, missing or malformed metadata, tensors that do not match the graph) and
    ``OSError`` (e.g. ``FileNotFoundError``) when the file cannot be read.
    """
    p = os.fspath(path)
    with open(p, "rb") as f:
        data = f.read()
    return from_bytes(data, source=p)


def from_bytes(data: bytes, *, source: str = "<bytes>") -> Graph:
    """Parse and validate the bytes of a model file; ``source`` names it in error messages.

    The engine's validator checks the bytes first (container, graph JSON, tensors); only a
    valid file is then decoded into a :class:`Graph`."""
    check_bytes(bytes(data), source)
    metadata = read_metadata(data)
    doc = json.loads(metadata[GRAPH_KEY])
    tensors = safetensors.numpy.load(data)
    try:
        graph = Graph.from_json(doc, tensors)
        if META_KEY in metadata:
            graph.meta = _read_meta(metadata[META_KEY], graph, source)
    except ModelError as exc:  # cannot happen for a file the validator accepted
        raise ModelError(f"{source}: {exc}") from None
    return graph


def _read_meta(text: str, graph: Graph, source: str) -> dict[str, Any]:
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelError(
            f"{source}: metadata {META_KEY!r} is not valid JSON: {exc.msg} at line {exc.lineno}"
        ) from None
    meta = check_meta(meta, graph.input_shape, source=f"{source}: metadata {META_KEY!r}")
    if meta.get("modules") is not None:
        names = {n.name for n in graph.nodes}
        stray = sorted(set(meta["modules"]) - names)
        if stray:
            raise ModelError(
                f"{source}: metadata {META_KEY!r} field 'modules' names unknown nodes {stray[:5]}"
            )
    return meta
