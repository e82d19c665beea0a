"""The user-facing API: :func:`load`, :func:`run` and :class:`Stream`.

A network runs in one of two executors that agree spike for spike (docs/semantics.md): the
event-driven Rust engine (``mode="engine"``, the native module ``snnsim._core``) or the torch
reference (``mode="reference"``, :mod:`snnsim.reference`). Both receive the same prepared arrays
(:mod:`snnsim.inputs`, :mod:`snnsim.events`) and return the same
:class:`~snnsim.result.RunResult`.

The native module is imported on first use, so everything else (building, saving, loading and
validating graphs and inputs) works without it.
"""

from __future__ import annotations

import os
import threading
from dataclasses import replace
from types import ModuleType
from typing import Any, Iterable, Literal, Sequence

import numpy as np

from . import model_file
from .errors import InputError, LimitError, ModelError, SnnsimError
from .events import (
    Binning,
    bin_events,
    bin_events_window,
    check_dt,
    check_steps,
    event_columns,
    flatten_events,
    is_event_array,
    validate_events,
    validate_recordings,
    window_bins,
    window_count,
)
from .graph import NEURON_OPS, Graph
from .inputs import (
    frames_for_precision,
    prepare_frames,
    prepare_sequence,
    prepare_static,
    to_numpy,
)
from .limits import MAX_THREADS, check_bytes
from .native import core as native_core
from .result import COUNT_FIELDS, Counts, RunResult

Mode = Literal["engine", "reference"]
MODES = ("engine", "reference")


class Model:
    """A validated network: the :class:`~snnsim.graph.Graph` and, compiled on first use, the
    engine's ``snnsim._core.Model``.

    Create one with :func:`load` (from a file) or :meth:`from_graph`. Do not modify the graph
    afterwards: names, shapes and the compiled engine are taken from it once.
    """

    def __init__(self, graph: Graph, *, path: str | None = None) -> None:
        self._graph = graph
        self._path = path
        self._engine: Any = None
        order = graph.topological_order()
        self._names = tuple(n.name for n in order)
        self._ops = tuple(n.op for n in order)
        self._shapes = graph.shapes()
        self._reference_dense: np.ndarray | None = None

    @classmethod
    def from_graph(cls, graph: Graph) -> "Model":
        """Validate ``graph`` (``ModelError`` on violations) and wrap it; it is compiled for the
        engine from its serialised bytes when first run there."""
        if not isinstance(graph, Graph):
            raise TypeError(f"expected a Graph, got {type(graph).__name__}")
        graph.validate()
        return cls(graph)

    # ---------------------------------------------------------------- description
    @property
    def graph(self) -> Graph:
        return self._graph

    @property
    def path(self) -> str | None:
        """The file the model was loaded from (None for an in-memory graph)."""
        return self._path

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Per-sample input shape: ``(C, H, W)`` or ``(F,)``."""
        return tuple(int(d) for d in self._graph.input_shape)

    @property
    def input_kind(self) -> str:
        """``"static"`` (analog input repeated every step), ``"events"`` (per-step event counts)
        or ``"sequence"`` (per-step tensors: spike trains or graded values)."""
        return self._graph.input_kind

    @property
    def input_scale(self) -> float | None:
        """Quantisation scale of a static input in int precision."""
        return self._graph.input_scale

    @property
    def input_signed(self) -> bool:
        """Whether an int-precision static (or sequence) input is signed 8-bit, ``[-128, 127]``
        (True), or unsigned, ``[0, 255]`` (False; the file's ``input.signed``)."""
        return bool(self._graph.input_signed)

    @property
    def precision(self) -> str:
        """``"float32"`` or ``"int"``."""
        return self._graph.precision

    @property
    def node_names(self) -> list[str]:
        """Node names in topological order: the layer axis ``L`` of counts."""
        return list(self._names)

    @property
    def node_ops(self) -> list[str]:
        return list(self._ops)

    @property
    def node_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-sample output shape of every node (and of ``"input"``)."""
        return dict(self._shapes)

    @property
    def output(self) -> str:
        """Name of the output node."""
        assert self._graph.output is not None
        return self._graph.output

    @property
    def n_outputs(self) -> int:
        return int(np.prod(self._shapes[self.output]))

    @property
    def meta(self) -> dict[str, Any]:
        """What the network was trained with (the file's ``"snnsim.meta"``; empty if absent)."""
        return self._graph.meta

    @property
    def T(self) -> int | None:
        """Time steps the network was trained with: the default ``steps`` of :func:`run`
        (None when the file does not record it)."""
        t = self._graph.meta.get("T")
        return None if t is None else int(t)

    @property
    def preprocess(self) -> dict[str, Any] | None:
        """The input preprocessing recorded at export (``input_shape`` as the data loader gives a
        sample, ``rescale``, per-channel ``mean``/``std``, ``flatten``), applied by :func:`run`."""
        return self._graph.meta.get("preprocess")

    @property
    def modules(self) -> dict[str, list[str]]:
        """Node name -> the torch modules it was made from (empty when not recorded)."""
        return dict(self._graph.meta.get("modules") or {})

    @property
    def engine(self) -> Any:
        """The compiled ``snnsim._core.Model`` (built on first access)."""
        if self._engine is None:
            core = native_core()
            try:
                if self._path is not None:
                    self._engine = core.Model.load(self._path)
                else:
                    self._engine = core.Model.from_bytes(model_file.to_bytes(self._graph))
            except SnnsimError:  # ModelError, or LimitError for a network too large to run
                raise
            except ValueError as exc:
                raise ModelError(str(exc)) from exc
        return self._engine

    def __repr__(self) -> str:
        src = f", path={self._path!r}" if self._path else ""
        t = f", T={self.T}" if self.T is not None else ""
        return (
            f"Model(input={self.input_kind} {list(self.input_shape)}, "
            f"precision={self.precision!r}{t}, {len(self._names)} nodes, "
            f"output={self.output!r}{src})"
        )

    # ---------------------------------------------------------------- results
    def _result(self, raw: Any, from_engine: bool) -> RunResult:
        """Wrap an executor's raw result; counts and dense MACs are put in :attr:`node_names`
        order (the engine may order its layers differently)."""
        if from_engine:
            eng = self.engine
            res = RunResult.from_raw(
                raw, self._names, self._ops, eng.dense_macs(), raw_layer_names=eng.node_names
            )
        else:
            if self._reference_dense is None:
                self._reference_dense = _reference().dense_macs(self._graph)
            res = RunResult.from_raw(raw, self._names, self._ops, self._reference_dense)
        return replace(res, trained_steps=self.T) if self.T is not None else res

    def _empty_result(
        self, record: Sequence[str], output: np.ndarray | None, output_sum: np.ndarray | None
    ) -> RunResult:
        """An engine result covering zero steps of one sample (``output`` carried over)."""
        L = len(self._names)
        out = np.zeros((1, self.n_outputs)) if output is None else output
        raw = {
            "output": out,
            "prediction": np.argmax(out, axis=1),
            "output_sum": np.zeros_like(out) if output_sum is None else output_sum,
            "counts": {f: np.zeros((1, L, 0), dtype=np.uint64) for f in COUNT_FIELDS},
            "record": {r: np.zeros((1, 0, *self._shapes[r]), dtype=np.uint8) for r in record},
        }
        return self._result(raw, True)


def load(path: str | os.PathLike[str]) -> Model:
    """Load a model file (``.snn.safetensors``); ``ModelError`` if it is not a valid snnsim
    model (for a training run directory or a torch checkpoint, the message says how to export
    it). The engine compiles it on first run."""
    p = os.fspath(path)
    _not_a_checkpoint(p)
    return Model(model_file.load(p), path=p)


_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default (zip) format
_PICKLE_MAGIC = b"\x80"  # torch.save's legacy format: a pickle (protocol >= 2)


def _not_a_checkpoint(p: str) -> None:
    """Raise a ModelError that says what ``p`` is and what to call when it is a training run
    directory or a torch checkpoint rather than a model file."""
    hint = (
        "export it first: snnsim.export({src!r}, 'net.snn.safetensors', mode='int8') "
        "(or on the command line: snnsim export {src} net.snn.safetensors --mode int8)"
    )
    if os.path.isdir(p):
        what = (
            "a training run directory"
            if os.path.isfile(os.path.join(p, "checkpoint.pt"))
            else "a directory"
        )
        raise ModelError(f"{p}: is {what}, not an snnsim model file; " + hint.format(src=p))
    try:
        with open(p, "rb") as f:
            head = f.read(4)
    except OSError:
        return  # model_file.load reports it
    if head == _ZIP_MAGIC or head[:1] == _PICKLE_MAGIC:
        raise ModelError(
            f"{p}: is a torch checkpoint (torch.save), not an snnsim model file; "
            + hint.format(src=p)
        )


def as_model(model: Model | Graph | str | os.PathLike[str]) -> Model:
    """``model`` as a :class:`Model`: a Model as it is, a :class:`~snnsim.graph.Graph` validated
    and wrapped (:meth:`Model.from_graph`), a path loaded (:func:`load`). ``TypeError`` for
    anything else; :class:`~snnsim.errors.ModelError` for an invalid graph or file."""
    if isinstance(model, Model):
        return model
    if isinstance(model, Graph):
        return Model.from_graph(model)
    if isinstance(model, (str, os.PathLike)):
        return load(model)
    raise TypeError(f"model must be a path, a Graph or an snnsim Model, got {type(model).__name__}")


# ---------------------------------------------------------------------- argument checks
def _check_threads(threads: Any) -> int | None:
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)):
        raise TypeError(f"threads must be an int or None, got {type(threads).__name__}")
    if not 1 <= threads <= MAX_THREADS:
        raise InputError(
            f"threads must be between 1 and {MAX_THREADS} (or None for all cores), "
            f"got {int(threads)}"
        )
    return int(threads)


def _record_names(model: Model, record: str | Iterable[str]) -> list[str]:
    """Names of the neuron nodes whose spikes to return (a single name may be given as a str)."""
    names = [record] if isinstance(record, str) else list(record)
    ops = dict(zip(model.node_names, model.node_ops, strict=True))
    for r in names:
        if not isinstance(r, str):
            raise TypeError(f"record must hold node names (str), got {type(r).__name__}")
        if r not in ops:
            raise InputError(
                f"record: no node named {r!r}; the model's nodes are {model.node_names}"
            )
        if ops[r] not in NEURON_OPS:
            raise InputError(
                f"record: node {r!r} is a {ops[r]!r} node; only neuron nodes "
                f"({', '.join(NEURON_OPS)}) have spikes to record"
            )
    return list(dict.fromkeys(names))


def _event_batch(inputs: Any) -> list[np.ndarray] | None:
    """The recordings of event input (one structured array or a list of them), else None."""
    if is_event_array(inputs):
        return [inputs]
    if isinstance(inputs, (list, tuple)):
        if len(inputs) == 0:
            raise InputError("inputs: the list of recordings is empty")
        for i, ev in enumerate(inputs):
            if not is_event_array(ev):
                raise TypeError(
                    f"inputs: a list must hold event recordings (structured numpy arrays with "
                    f"fields x, y, p, t); element {i} is {type(ev).__name__}"
                    + (f" of dtype {ev.dtype}" if isinstance(ev, np.ndarray) else "")
                    + " (pass a batch of images or frames as one array)"
                )
        return list(inputs)
    return None


# ---------------------------------------------------------------------- run
def run(
    model: Model | Graph | str | os.PathLike[str],
    inputs: Any,
    *,
    steps: int | None = None,
    mode: Mode = "engine",
    record: str | Iterable[str] = (),
    binning: Literal["time", "count"] = "time",
    dt_us: int | None = None,
    threads: int | None = None,
    preprocess: bool = True,
) -> RunResult:
    """Run a network on a batch of inputs and return outputs, predictions and exact counts.

    ``model``: a path to a model file, a :class:`~snnsim.graph.Graph` (validated and compiled in
    memory) or a :class:`Model`. ``mode``: ``"engine"`` (Rust, default) or ``"reference"``
    (torch); the result has the same structure either way. ``record``: names of neuron nodes
    whose spikes are returned per step. ``threads``: engine worker threads (None: the engine's
    default; ignored by the reference).

    ``inputs`` by the model's input kind:

    * static models: an array or tensor ``[*input_shape]`` or ``[B, *input_shape]`` applied at
      every one of ``steps`` time steps. ``steps`` defaults to the ``T`` the network was trained
      with when the file records it (:attr:`Model.T`); a different ``steps`` runs as asked and
      the result says so (:attr:`RunResult.trained_steps`). When the file records the input
      preprocessing (:attr:`Model.preprocess`), float inputs are taken as the data loader gives
      them (e.g. ``[B, 1, 28, 28]`` images in [0, 1] for a network that flattens them) and
      normalised and reshaped as in training; ``preprocess=False`` skips that;
    * event models, pre-binned frames: a numeric array ``[B, T, *input_shape]`` or
      ``[T, *input_shape]`` of per-step event counts (``steps`` may be omitted; if given it must
      equal ``T``), e.g. tonic's ``ToFrame`` output;
    * sequence models: per-step tensors ``[B, T, *input_shape]`` or ``[T, *input_shape]`` of
      any input shape (``[F]``, ``[C, L]``, ``[C, H, W]``), binary spike trains or graded
      values (int precision: quantised with the model's input scale); ``steps`` as for frames;
    * event models, recordings: a structured event array (fields x, y, p, t; t in microseconds)
      or a list of them (a batch), binned either into ``steps`` bins (default: the trained
      ``T``) by ``binning`` (``"time"`` or ``"count"``), or into fixed windows of ``dt_us``
      microseconds starting at each recording's first timestamp; with ``dt_us`` and no
      ``steps``, ``steps`` is the largest ``ceil((t[-1] - t[0] + 1) / dt_us)`` of the batch
      (shorter recordings get empty trailing windows) and with ``steps`` given, events after
      the last window are dropped.

    Raises ``TypeError`` for wrong argument types, and otherwise an
    :class:`~snnsim.errors.SnnsimError` (a ``ValueError``): ``InputError`` for arguments and
    inputs that do not fit the model, ``ModelError`` for an invalid model, ``LimitError`` when
    the run would allocate more than the memory limit (:func:`snnsim.set_memory_limit`; checked
    before allocating), ``NumericError`` for an integer overflow (naming the node and step) or
    a non-finite float32 value (naming the node).
    """
    m = as_model(model)
    if mode not in MODES:
        raise InputError(f"mode must be 'engine' or 'reference', got {mode!r}")
    steps = None if steps is None else check_steps(steps)
    threads = _check_threads(threads)
    rec = _record_names(m, record)
    if binning not in ("time", "count"):
        raise InputError(f"binning must be 'time' or 'count', got {binning!r}")
    dt = check_dt(dt_us) if dt_us is not None else None

    recordings = _event_batch(inputs)
    if recordings is not None:
        if steps is None and dt is None:
            steps = m.T
        return _run_events(m, recordings, steps, binning, dt, mode, rec, threads)
    array = to_numpy(inputs)
    if dt is not None:
        raise InputError("dt_us applies to event recordings only; this input is a numeric array")
    if m.input_kind in ("events", "sequence"):
        frames = _prepare_steps(m, array)
        if steps is not None and steps != frames.shape[1]:
            raise InputError(
                f"steps = {steps} does not match the frames' T = {frames.shape[1]} (axis 1)"
            )
        return _run_arrays(m, mode, rec, threads, frames=frames)
    if steps is None:
        steps = m.T
    if steps is None:
        raise InputError(
            "static input needs steps >= 1 (the number of time steps to run); this model file "
            "does not record the T it was trained with"
        )
    if preprocess:
        array = _preprocess(m, array)
    x = prepare_static(array, m.input_shape, m.precision, m.input_scale, m.input_signed)
    return _run_arrays(m, mode, rec, threads, static=x, steps=steps)


def _prepare_steps(m: Model, a: Any) -> np.ndarray:
    """Per-step input of an event or sequence model as the executors take it."""
    if m.input_kind == "sequence":
        return prepare_sequence(a, m.input_shape, m.precision, m.input_scale, m.input_signed)
    return prepare_frames(a, m.input_shape, m.precision)


def _preprocess(m: Model, a: np.ndarray) -> np.ndarray:
    """Apply the recorded input preprocessing to a float input given as the data loader gives it
    (``[B, *preprocess.input_shape]``, or one sample) or in the graph's input shape: rescale,
    normalise per channel, reshape to ``[B, *input_shape]``. Other inputs pass unchanged."""
    pre = m.preprocess
    if pre is None or a.dtype.kind != "f":
        return a
    shape, data = m.input_shape, tuple(pre["input_shape"])
    if a.shape in (data, shape):
        a = a[None]
    if a.shape[1:] not in (data, shape):
        raise InputError(
            f"static input has shape {list(a.shape)}; the model takes "
            f"[B, {', '.join(map(str, data))}] "
            f"(as its data loader gave them in training) or [B, {', '.join(map(str, shape))}]"
        )
    b = a.shape[0]
    if pre.get("rescale", 1.0) == 1.0 and pre.get("mean") is None:
        return a.reshape((b, *shape))
    x = a.reshape((b, *data)).astype(np.float32) * np.float32(pre.get("rescale", 1.0))
    if pre.get("mean") is not None:  # as torch normalises float32 batches in training
        per_channel = (1, -1) + (1,) * (len(data) - 1)
        mean = np.asarray(pre["mean"], dtype=np.float32).reshape(per_channel)
        std = np.asarray(pre["std"], dtype=np.float32).reshape(per_channel)
        x = (x - mean) / std
    return x.reshape((b, *shape))


def _reference() -> ModuleType:
    from . import reference

    return reference


def _check_reference(
    m: Model, batch: int, steps: int, rec: list[str], *, with_frames: bool
) -> None:
    """The torch reference keeps counts, recordings and per-step input for the whole run:
    :class:`~snnsim.errors.LimitError` before allocating them beyond the memory limit."""
    n_in = int(np.prod(m.input_shape))
    parts = {
        f"counts (5 x [B={batch}, L={len(m.node_names)}, T={steps}] uint64)": 5
        * 8
        * batch
        * len(m.node_names)
        * steps,
    }
    for r in rec:
        parts[f"recording of {r!r}"] = batch * steps * int(np.prod(m.node_shapes[r]))
    if with_frames or m.input_kind in ("events", "sequence"):
        parts[f"frames ([B={batch}, T={steps}, {n_in} elements])"] = 4 * batch * steps * n_in
    check_bytes(parts, "steps", "this reference run")


def _run_arrays(
    m: Model,
    mode: str,
    rec: list[str],
    threads: int | None,
    *,
    static: np.ndarray | None = None,
    steps: int | None = None,
    frames: np.ndarray | None = None,
) -> RunResult:
    """Run prepared arrays: ``static`` [B, *shape] for ``steps`` steps, or ``frames``
    [B, T, *shape]."""
    if mode == "reference":
        arr = static if static is not None else frames
        assert arr is not None
        _check_reference(m, int(arr.shape[0]), steps or int(arr.shape[1]), rec, with_frames=False)
    if mode == "engine":
        if static is not None:
            raw = m.engine.run_static(static, steps, rec, threads)
        else:
            raw = m.engine.run_frames(frames, rec, threads)
    else:
        raw = _reference().run_reference(
            m.graph, static=static, frames=frames, steps=steps, record=tuple(rec)
        )
    return m._result(raw, mode == "engine")


def _run_events(
    m: Model,
    recordings: list[np.ndarray],
    steps: int | None,
    binning: Binning,
    dt: int | None,
    mode: str,
    rec: list[str],
    threads: int | None,
) -> RunResult:
    if m.input_kind != "events":
        raise InputError(
            f"event recordings were given but the model's input kind is {m.input_kind!r} "
            f"(input shape {list(m.input_shape)}); pass an array instead"
        )
    shape = m.input_shape
    validate_recordings(recordings, shape)
    if dt is not None:
        derived = steps is None
        if steps is None:
            steps = max(window_count(ev, dt) for ev in recordings)
            if steps == 0:
                raise InputError(
                    "events: cannot derive steps from dt_us for recordings without events; "
                    "pass steps"
                )
        if mode == "engine":  # windows binned in the engine, no dense frames
            x, y, p, t, offsets = flatten_events(recordings, shape, validate=False)
            try:
                raw = m.engine.run_events(
                    x, y, p, t, offsets, steps, "window", rec, threads, dt_us=dt
                )
            except LimitError as exc:
                if not derived:
                    raise
                raise LimitError(
                    f"{exc} (steps = {steps}: the windows of dt_us = {dt} that cover the "
                    "longest recording; pass steps to run fewer)"
                ) from None
            return m._result(raw, True)
        _check_reference(m, len(recordings), steps, rec, with_frames=True)
        origins = [int(ev["t"][0]) if ev.size else 0 for ev in recordings]
        frames = np.stack(
            [
                bin_events_window(ev, shape, o, dt, steps, validate=False)
                for ev, o in zip(recordings, origins, strict=True)
            ]
        )
        return _run_arrays(m, mode, rec, threads, frames=frames_for_precision(frames, m.precision))
    if steps is None:
        raise InputError(
            "event input needs steps (the number of time bins) or dt_us (the window length in "
            "microseconds)"
        )
    if mode == "reference":
        _check_reference(m, len(recordings), steps, rec, with_frames=True)
        frames = np.stack(
            [bin_events(ev, shape, steps, binning, validate=False) for ev in recordings]
        )
        return _run_arrays(m, mode, rec, threads, frames=frames_for_precision(frames, m.precision))
    x, y, p, t, offsets = flatten_events(recordings, shape, validate=False)
    raw = m.engine.run_events(x, y, p, t, offsets, steps, binning, rec, threads)
    return m._result(raw, True)


# ---------------------------------------------------------------------- streaming
class Stream:
    """Run one event stream (batch 1) in the engine incrementally, window by window.

    Time is cut into fixed windows of ``dt_us`` microseconds starting at ``origin_us`` (default:
    the first event's timestamp); window ``j`` covers ``[origin + j*dt_us, origin + (j+1)*dt_us)``
    and is one time step. :meth:`feed` runs the windows a chunk completes (a window is complete
    once an event at or after its end has been seen) and holds back the events of the still-open
    window; :meth:`flush` runs the open window. Feeding a recording in chunks, split anywhere,
    then flushing gives exactly ``run(model, events, dt_us=dt_us)``: the same outputs,
    predictions and per-step counts (concatenated by :meth:`result`).

    :meth:`feed_frames` advances by pre-binned frames instead (``dt_us`` not needed).

    A call that raises (bad events, an integer overflow, a resource limit) changes nothing: the
    events held back, the steps done and the results so far stay as they were. Calls from
    several threads are serialised.
    """

    def __init__(
        self,
        model: Model | Graph | str | os.PathLike[str],
        *,
        dt_us: int | None = None,
        origin_us: int | None = None,
        record: str | Iterable[str] = (),
    ) -> None:
        self._model = as_model(model)
        self._dt = check_dt(dt_us) if dt_us is not None else None
        if origin_us is not None:
            if isinstance(origin_us, bool) or not isinstance(origin_us, (int, np.integer)):
                raise TypeError(
                    f"origin_us must be an int (microseconds), got {type(origin_us).__name__}"
                )
            if origin_us < 0:
                raise InputError(f"origin_us must be >= 0 microseconds, got {int(origin_us)}")
            origin_us = int(origin_us)
        self._origin = origin_us
        self._record = _record_names(self._model, record)
        self._lock = threading.RLock()
        self._state = self._model.engine.new_stream()
        self._held: tuple[np.ndarray, ...] | None = None  # int64 x, y, p, t of the open window
        self._last_t: int | None = None
        self._parts: list[RunResult] = []
        self._output: np.ndarray | None = None
        self._output_sum: np.ndarray | None = None

    @property
    def model(self) -> Model:
        return self._model

    @property
    def steps_done(self) -> int:
        """Number of time steps (windows or frames) run so far."""
        return int(self._state.steps_done)

    @property
    def origin_us(self) -> int | None:
        """Start of window 0 in microseconds (None until the first event when not given)."""
        return self._origin

    def feed(self, events: np.ndarray) -> RunResult:
        """Feed the next chunk of one recording (a structured event array, timestamps continuing
        from the previous chunk) and run the windows it completes. Returns the result of those
        windows only (possibly zero steps); ``output``/``prediction`` cover everything so far."""
        if self._model.input_kind != "events":
            raise InputError(
                "Stream.feed needs a model with event input; this model's input kind is "
                f"{self._model.input_kind!r}"
            )
        if self._dt is None:
            raise InputError(
                "Stream.feed needs dt_us (the window length in microseconds) given to Stream()"
            )
        validate_events(events, self._model.input_shape, what="events chunk")
        with self._lock:
            if events.size == 0:
                return self._empty()
            cols: tuple[np.ndarray, ...] = event_columns(events)
            t = cols[3]
            if self._last_t is not None and t[0] < self._last_t:
                raise InputError(
                    f"events chunk: field 't' = {int(t[0])} at index 0 is earlier than the last "
                    f"event fed (t = {self._last_t}); chunks must continue in time"
                )
            origin = int(t[0]) if self._origin is None else self._origin
            if t[0] < origin:
                raise InputError(
                    f"events chunk: field 't' = {int(t[0])} at index 0 lies before "
                    f"origin_us = {origin}"
                )
            first_window = int(window_bins(t[:1], origin, self._dt)[0])
            if first_window < self.steps_done:
                raise InputError(
                    f"events chunk: field 't' = {int(t[0])} at index 0 falls in window "
                    f"{first_window}, which has already run ({self.steps_done} steps done)"
                )
            if self._held is not None:
                cols = tuple(np.concatenate([h, c]) for h, c in zip(self._held, cols, strict=True))
            j = window_bins(cols[3], origin, self._dt)
            open_window = int(j[-1])
            ready = j < open_window
            held = tuple(np.ascontiguousarray(c[~ready]) for c in cols)
            res = self._run_windows(
                tuple(np.ascontiguousarray(c[ready]) for c in cols),
                open_window - self.steps_done,
                origin,
            )
            # only now, after the engine accepted the windows, does the stream move on
            self._origin, self._last_t, self._held = origin, int(t[-1]), held
            return self._keep(res)

    def flush(self) -> RunResult:
        """Run the open window (the events held back by :meth:`feed`); a result of zero steps
        if there is none."""
        with self._lock:
            if self._held is None:
                return self._empty()
            assert self._origin is not None and self._dt is not None
            held = self._held
            window = int(window_bins(held[3][-1:], self._origin, self._dt)[0])
            res = self._run_windows(held, window + 1 - self.steps_done, self._origin)
            self._held = None
            return self._keep(res)

    def feed_frames(self, frames: Any) -> RunResult:
        """Advance by per-step input ``[T, *input_shape]`` (or ``[1, T, *input_shape]``): binned
        event counts for an event model, tensors (spikes or graded values) for a sequence model;
        returns the result of these ``T`` steps."""
        if self._model.input_kind == "static":
            raise InputError(
                "Stream.feed_frames needs a model with per-step input (kind 'events' or "
                "'sequence'); this model's input kind is 'static'"
            )
        f = _prepare_steps(self._model, frames)
        if f.shape[0] != 1:
            raise InputError(
                "Stream.feed_frames: a stream has batch size 1, got frames of shape "
                f"{list(f.shape)}"
            )
        with self._lock:
            if self._held is not None:
                raise InputError(
                    "Stream.feed_frames: events of an open window are held back; call flush() first"
                )
            raw = self._state.feed_frames(np.ascontiguousarray(f[0]), self._record)
            return self._keep(self._model._result(raw, True))

    def _run_windows(self, cols: tuple[np.ndarray, ...], steps: int, origin: int) -> RunResult:
        """Run ``steps`` windows (from ``steps_done``) on ``cols``; the stream's Python state is
        left to the caller to update once this returned."""
        if steps <= 0:
            return self._empty()
        assert self._dt is not None
        x, y, p, t = cols
        # windows start at origin + steps_done * dt in the engine
        raw = self._state.feed_events(x, y, p, t, origin, self._dt, steps, self._record)
        return self._model._result(raw, True)

    def _keep(self, res: RunResult) -> RunResult:
        """Record a result that covers new steps (a zero-step result changes nothing)."""
        if res.steps > 0:
            self._parts.append(res)
            self._output, self._output_sum = res.output, res.output_sum
        return res

    def _empty(self) -> RunResult:
        return self._model._empty_result(self._record, self._output, self._output_sum)

    def result(self) -> RunResult:
        """Everything run so far as one result: per-step counts and records concatenated,
        ``output``/``prediction`` over all steps (zeros and 0 before any step has run)."""
        with self._lock:
            return self._result()

    def _result(self) -> RunResult:
        if not self._parts:
            return self._empty()
        last = self._parts[-1]
        return RunResult(
            output=last.output,
            prediction=last.prediction,
            counts=Counts.concat([r.counts for r in self._parts]),
            record={
                k: np.concatenate([r.record[k] for r in self._parts], axis=1) for k in self._record
            },
            steps=sum(r.steps for r in self._parts),
            output_sum=last.output_sum,
        )

    @property
    def output(self) -> np.ndarray:
        """float64 ``[1, n_out]`` over all steps so far (zeros before any step has run)."""
        return self._output if self._output is not None else np.zeros((1, self._model.n_outputs))

    @property
    def prediction(self) -> np.ndarray:
        """int64 ``[1]``: argmax of :attr:`output` (first index on ties)."""
        return np.argmax(self.output, axis=1).astype(np.int64)
