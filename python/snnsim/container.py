"""The safetensors container of a model file and its one validator (docs/model-format.md §1).

:func:`encode` turns a graph's JSON document, tensors and training metadata into the bytes of a
model file, without validating them; :func:`check_bytes` validates bytes with the engine's
validator (``snnsim._core.validate_file``), the only one. :class:`~snnsim.graph.Graph` and
:mod:`snnsim.model_file` both build on this module, which knows nothing of either.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import safetensors
import safetensors.numpy

from .errors import ModelError
from .native import core

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


def check_bytes(data: bytes, source: str) -> dict[str, Any]:
    """Validate the bytes of a model file with the engine's validator; return its description
    (precision, input, node names/ops/shapes in topological order, output). ModelError naming
    ``source`` and the problem otherwise."""
    try:
        return core().validate_file(data)
    except ModelError as exc:
        raise ModelError(f"{source}: {exc}") from None


def encode(
    doc: dict[str, Any],
    tensors: dict[str, np.ndarray],
    meta: dict[str, Any],
    input_shape: tuple[int, ...],
) -> bytes:
    """The bytes of a model file holding the graph JSON ``doc``, its ``tensors`` (by file name
    ``"{node}.{field}"``) and the training ``meta`` (checked by :func:`check_meta`; omitted when
    empty). Not validated by the engine (:func:`check_bytes` does that). ModelError when the
    values cannot be stored (JSON that does not encode, an unsupported tensor dtype)."""
    scale = doc.get("input", {}).get("scale")
    if scale is not None and not (
        isinstance(scale, (int, float, np.integer, np.floating)) and np.isfinite(scale)
    ):
        raise ModelError(f"input: field 'scale' must be a finite positive number, got {scale!r}")
    try:
        text = json.dumps(doc, default=_json_default, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"graph: cannot encode the graph as JSON: {exc}") from None
    metadata = {FORMAT_KEY: FORMAT_VALUE, GRAPH_KEY: text}
    if meta:
        checked = check_meta(meta, input_shape, source="graph.meta")
        metadata[META_KEY] = json.dumps(checked, default=_json_default, allow_nan=False)
    try:
        return safetensors.numpy.save(tensors, metadata=metadata)
    except (ValueError, TypeError, KeyError, safetensors.SafetensorError) as exc:
        bad = [k for k, v in tensors.items() if v.dtype.kind not in "biuf"]
        what = f"tensor(s) {bad[:5]} of unsupported dtype" if bad else "the tensors"
        raise ModelError(f"graph: cannot store {what}: {exc}") from None


def read_metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of the safetensors header of a file the validator accepted."""
    (n,) = struct.unpack("<Q", data[:_LEN_BYTES])
    header = json.loads(data[_LEN_BYTES : _LEN_BYTES + n].decode("utf-8"))
    return header["__metadata__"]
