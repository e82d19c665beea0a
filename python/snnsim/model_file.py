"""Reading and writing snnsim model files (docs/model-format.md §1).

A model file is one safetensors file: every tensor a node owns is stored as
``"{node_name}.{field}"`` and the graph JSON sits in the metadata under ``"snnsim.graph"``
(with ``"format": "snnsim"``). :func:`save` validates the graph and writes the file atomically;
:func:`load` reads it back and validates it. Every problem with a file is reported as
:class:`~snnsim.errors.ModelError` naming what is wrong (never a raw safetensors or JSON error).
"""

from __future__ import annotations

import json
import os
import struct
from typing import Any

import numpy as np
import safetensors
import safetensors.numpy

from .atomic import atomic_write
from .errors import ModelError
from .graph import Graph

FORMAT_KEY = "format"
FORMAT_VALUE = "snnsim"
GRAPH_KEY = "snnsim.graph"
#: Optional key: what the network was trained with (T, input preprocessing, torch module names);
#: a JSON object, see :func:`check_meta` and docs/model-format.md §1.1. The engine ignores it.
META_KEY = "snnsim.meta"
META_VERSION = 1

# safetensors layout: an 8-byte little-endian header length, the JSON header, then the data.
_LEN_BYTES = 8


def _json_default(obj: Any) -> Any:
    """JSON encoding of the numpy scalars and arrays a builder may leave in node attributes."""
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(
        f"attribute value {obj!r} of type {type(obj).__name__} is not JSON serialisable"
    )


def graph_metadata(graph: Graph) -> dict[str, str]:
    """The safetensors metadata of a graph: the format tag and the graph JSON (a string)."""
    try:
        doc = json.dumps(graph.to_json(), default=_json_default, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"graph: cannot encode the graph as JSON: {exc}") from None
    out = {FORMAT_KEY: FORMAT_VALUE, GRAPH_KEY: doc}
    if graph.meta:
        meta = check_meta(graph.meta, graph.input_shape, source="graph.meta")
        out[META_KEY] = json.dumps(meta, default=_json_default, allow_nan=False)
    return out


def _pos_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _check_preprocess(pre: Any, input_shape: tuple[int, ...], where: str) -> dict[str, Any]:
    """Validate the ``preprocess`` object: ``input_shape`` (per sample, as the data loader gives
    it), ``rescale`` (a factor applied first), ``mean``/``std`` (per channel, or null) and
    ``flatten`` (reshape to the graph's input shape)."""
    if not isinstance(pre, dict):
        raise ModelError(f"{where}: field 'preprocess' must be a JSON object, got {pre!r}")
    known = {"input_shape", "rescale", "mean", "std", "flatten"}
    unknown = sorted(set(pre) - known)
    if unknown:
        raise ModelError(f"{where}: field 'preprocess' has unknown keys {unknown}")
    shape = pre.get("input_shape", list(input_shape))
    if not isinstance(shape, list) or not shape or not all(_pos_int(d) for d in shape):
        raise ModelError(
            f"{where}: field 'preprocess.input_shape' must be a list of positive ints, "
            f"got {shape!r}"
        )
    if int(np.prod(shape)) != int(np.prod(input_shape)):
        raise ModelError(
            f"{where}: field 'preprocess.input_shape' {shape} does not hold the "
            f"{int(np.prod(input_shape))} values of the graph's input shape {list(input_shape)}"
        )
    rescale = pre.get("rescale", 1.0)
    if (
        isinstance(rescale, bool)
        or not isinstance(rescale, (int, float))
        or not (np.isfinite(rescale) and rescale != 0)
    ):
        raise ModelError(
            f"{where}: field 'preprocess.rescale' must be a finite nonzero number, got {rescale!r}"
        )
    out: dict[str, Any] = {"input_shape": [int(d) for d in shape], "rescale": float(rescale)}
    channels = shape[0] if len(shape) == 3 else 1
    for key in ("mean", "std"):
        v = pre.get(key)
        if v is None:
            out[key] = None
            continue
        ok = isinstance(v, list) and len(v) in (1, channels)
        ok = ok and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and np.isfinite(x) for x in v
        )
        if not ok or (key == "std" and any(x <= 0 for x in v)):
            rule = "positive numbers" if key == "std" else "finite numbers"
            raise ModelError(
                f"{where}: field 'preprocess.{key}' must be a list of 1 or {channels} {rule} "
                f"(one per channel), got {v!r}"
            )
        out[key] = [float(x) for x in v]
    flatten = pre.get("flatten", list(shape) != list(input_shape))
    if not isinstance(flatten, bool):
        raise ModelError(
            f"{where}: field 'preprocess.flatten' must be true or false, got {flatten!r}"
        )
    out["flatten"] = flatten
    return out


def check_meta(meta: Any, input_shape: Any, *, source: str = "snnsim.meta") -> dict[str, Any]:
    """Validate the training metadata of a model (the ``"snnsim.meta"`` JSON object) and return
    it normalised. Fields (all optional): ``version`` (1), ``T`` (time steps the network was
    trained with, an int >= 1), ``preprocess`` (see :func:`_check_preprocess`), ``modules``
    (node name -> list of torch module names), ``source`` (free-form JSON object: where the
    network came from). Unknown top-level keys are kept. Raises :class:`ModelError` naming the
    field."""
    if not isinstance(meta, dict):
        raise ModelError(f"{source}: must be a JSON object, got {type(meta).__name__}")
    out = dict(meta)
    version = out.setdefault("version", META_VERSION)
    if version != META_VERSION:
        raise ModelError(f"{source}: unsupported field 'version' {version!r} (expected 1)")
    if "T" in out and not _pos_int(out["T"]):
        raise ModelError(f"{source}: field 'T' must be an int >= 1 (time steps), got {out['T']!r}")
    shape = tuple(int(d) for d in input_shape)
    if out.get("preprocess") is not None:
        out["preprocess"] = _check_preprocess(out["preprocess"], shape, source)
    mods = out.get("modules")
    if mods is not None:
        ok = isinstance(mods, dict) and all(
            isinstance(k, str) and isinstance(v, list) and all(isinstance(x, str) for x in v)
            for k, v in mods.items()
        )
        if not ok:
            raise ModelError(
                f"{source}: field 'modules' must map node names to lists of torch module names"
            )
    if out.get("source") is not None and not isinstance(out["source"], dict):
        raise ModelError(f"{source}: field 'source' must be a JSON object")
    return out


def to_bytes(graph: Graph) -> bytes:
    """Validate ``graph`` and serialise it to the bytes of a model file (what :func:`save`
    writes; what ``snnsim._core.Model.from_bytes`` compiles)."""
    graph.validate()
    return safetensors.numpy.save(graph.tensor_dict(), metadata=graph_metadata(graph))


def save(graph: Graph, path: str | os.PathLike[str]) -> None:
    """Validate ``graph`` and write it to ``path`` as one safetensors file.

    The file is written atomically: the bytes go to a temporary file in the destination's
    directory, which is flushed, fsync'ed and then renamed over ``path`` (``os.replace``). On any
    error (an invalid graph, a full disk) no partial file is left behind and an existing file at
    ``path`` is not touched.
    """
    data = to_bytes(graph)
    atomic_write(path, lambda f: f.write(data))


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
    """Parse and validate the bytes of a model file; ``source`` names it in error messages."""
    metadata = _read_metadata(data, source)
    fmt = metadata.get(FORMAT_KEY)
    if fmt != FORMAT_VALUE:
        raise ModelError(
            f"{source}: metadata key {FORMAT_KEY!r} must be {FORMAT_VALUE!r}, got {fmt!r} "
            "(not an snnsim model file?)"
        )
    if GRAPH_KEY not in metadata:
        raise ModelError(f"{source}: metadata key {GRAPH_KEY!r} (the graph JSON) is missing")
    try:
        doc = json.loads(metadata[GRAPH_KEY])
    except json.JSONDecodeError as exc:
        raise ModelError(
            f"{source}: metadata {GRAPH_KEY!r} is not valid JSON: {exc.msg} at "
            f"line {exc.lineno} column {exc.colno}"
        ) from None
    if not isinstance(doc, dict):
        raise ModelError(
            f"{source}: metadata {GRAPH_KEY!r} must be a JSON object, got {type(doc).__name__}"
        )
    try:
        tensors = safetensors.numpy.load(data)
    except safetensors.SafetensorError as exc:
        raise ModelError(f"{source}: corrupt tensor data: {exc}") from None
    try:
        graph = Graph.from_json(doc, tensors)
        graph.validate()
    except ModelError as exc:
        raise ModelError(f"{source}: {exc}") from None
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        # Values of the wrong JSON type deep inside the graph (e.g. a string where a number is
        # expected) that the validator does not name field by field.
        raise ModelError(f"{source}: malformed graph JSON ({type(exc).__name__}: {exc})") from None
    if META_KEY in metadata:
        graph.meta = _read_meta(metadata[META_KEY], graph, source)
    return graph


def _read_meta(text: str, graph: Graph, source: str) -> dict[str, Any]:
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelError(
            f"{source}: metadata {META_KEY!r} is not valid JSON: {exc.msg} at line {exc.lineno}"
        ) from None
    meta = check_meta(meta, graph.input_shape, source=f"{source}: metadata {META_KEY!r}")
    if "modules" in meta:
        names = {n.name for n in graph.nodes}
        stray = sorted(set(meta["modules"]) - names)
        if stray:
            raise ModelError(
                f"{source}: metadata {META_KEY!r} field 'modules' names unknown nodes {stray[:5]}"
            )
    return meta


def _read_metadata(data: bytes, source: str) -> dict[str, str]:
    """Decode the safetensors header of ``data`` and return its ``__metadata__`` dict, with an
    error naming the problem for anything that is not a well-formed safetensors header."""
    if len(data) < _LEN_BYTES:
        raise ModelError(f"{source}: file is {len(data)} bytes, too short to be a safetensors file")
    (n,) = struct.unpack("<Q", data[:_LEN_BYTES])
    if n > len(data) - _LEN_BYTES:
        raise ModelError(
            f"{source}: header length {n} exceeds the file size {len(data)} "
            "(truncated, or not a safetensors file)"
        )
    try:
        header = json.loads(data[_LEN_BYTES : _LEN_BYTES + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelError(
            f"{source}: the safetensors header is not valid JSON (not a safetensors file?)"
        ) from None
    if not isinstance(header, dict):
        raise ModelError(
            f"{source}: the safetensors header is not a JSON object (not a safetensors file?)"
        )
    metadata = header.get("__metadata__")
    if metadata is None:
        raise ModelError(
            f"{source}: the file has no metadata (expected keys {FORMAT_KEY!r} and {GRAPH_KEY!r}; "
            "not an snnsim model file?)"
        )
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ModelError(f"{source}: the safetensors metadata must map strings to strings")
    return metadata
