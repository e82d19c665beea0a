"""NIR (Neuromorphic Intermediate Representation) import and export for float32 graphs.

:func:`to_nir` turns a float32 :class:`~snnsim.graph.Graph` into a ``nir.NIRGraph``;
:func:`from_nir` turns a ``nir.NIRGraph`` (or a NIR file path) into a Graph. Time is discrete in
snnsim; NIR's continuous-time neurons are read with forward Euler and step ``dt`` (default 1).

Exact round trip
----------------
Every node written by :func:`to_nir` carries ``metadata["snnsim"]``: a JSON string holding the
snnsim op, its attributes and its small per-channel tensors (neuron and scale parameters);
weights and biases travel in the NIR node's own float32 arrays. The graph carries
``metadata["snnsim"]`` too (input kind/scale, node order, output name). :func:`from_nir` reads
nodes that have this metadata back exactly (same JSON, same tensors, same spikes), also through
``nir.write``/``nir.read``. NIR nodes without it are read by the native semantics below.

Mapping (snnsim op <-> NIR node)
--------------------------------
==============  ===========================  ================================================
snnsim          NIR                          notes
==============  ===========================  ================================================
linear          Affine (bias) / Linear       exact both ways
conv2d          Conv2d                       exact; NIR bias is mandatory, so a bias-less conv
                                             is written with a zero bias (metadata drops it
                                             again); import: groups=1, dilation=1, padding int,
                                             pair, "valid" or "same" (stride 1, odd kernel)
conv1d          Conv1d                       exact (bias as for conv2d); import: groups=1,
                                             dilation=1, padding int, "valid" or "same"
sumpool1d,      (none)                       ModelError: NIR has no 1-d pool
avgpool1d
delay           Delay (delay = dt)           exact; the NIR graph keeps the cycle the delay
                                             closes. Import: a Delay of one step ``dt``; an
                                             edge that closes a cycle without a Delay (a
                                             peer's recurrent connection) gets a delay
sumpool2d       SumPool2d                    exact; padding must be 0
avgpool2d       AvgPool2d                    exact (mean of the window); padding must be 0
flatten         Flatten(start_dim=0)         exact; import also accepts start_dim=1 (the
                                             batch-dimension convention) with end_dim=-1
scale           Scale                        exact without shift; with a shift on an [F]
                                             value: Affine(diag(scale), shift); with a shift
                                             on [C,H,W]: ModelError (NIR has no such node)
add             Scale(ones), 2+ in-edges     exact: NIR sums incoming edges, times 1.
                                             Import: any node with 2+ in-edges gets an add
dspike_lif      LIF / IF                     native (step dt, default 1): tau = dt/(1-leak),
                                             r = 1/(1-leak), v_leak = 0, v_threshold = fire,
                                             v_reset = 0 (Euler: v <- (1-dt/tau) v +
                                             (dt r/tau) x = leak v + x); leak == 1
                                             everywhere: IF(r=1/dt). Strict '>' and reset to
                                             0 match NIR. Exact via metadata (the float32
                                             round trip leak -> tau -> leak is not always)
dsr_if          IF + metadata                native fields: r=1/dt, v_threshold=fire,
                                             v_reset=0. A plain NIR reader sees a hard-reset,
                                             strict '>' IF: NOT the DSR semantics (fire >=
                                             fire level, subtract theta). Exact only through
                                             metadata
dsr_lif         LIF (IF if leak == 1)        tau = dt/(1-leak), r = gain/(1-leak), v_leak =
                + metadata                   0, v_threshold = fire; same caveat as dsr_if
integrate       I (r=1/dt) + metadata        exact (v <- v + x); also with a leak of 1
                                             everywhere
integrate with  LI + metadata                native: tau = dt/(1-leak), r = 1/(1-leak),
leak != 1                                    v_leak = 0 (Euler: v <- (1-dt/tau) v +
                                             (dt r/tau) x = leak v + x); a channel with leak
                                             1 gets tau = r = inf (no native reading). Exact
                                             via metadata
==============  ===========================  ================================================

Plain NIR import (nodes without snnsim metadata), with step ``dt``:

* ``IF(r, v_threshold, v_reset=0)``: ``v <- v + dt*r*x``; spike if ``v > v_threshold``; reset to
  0 -> ``dspike_lif`` with ``leak = 1`` and ``fire = v_threshold``, preceded by a ``scale`` node
  ``{name}_in`` (``dt*r``) unless ``dt*r == 1``.
* ``LIF(tau, r, v_leak, v_threshold, v_reset=0)``: ``v <- v + (dt/tau)(v_leak - v + r x)``, i.e.
  ``v <- leak*v + gain*x + bias`` with ``leak = 1 - dt/tau``, ``gain = dt*r/tau``,
  ``bias = dt*v_leak/tau`` -> ``dspike_lif(leak, fire=v_threshold)`` preceded by
  ``scale(gain, shift=bias)`` unless gain == 1 and bias == 0. Real-arithmetic equal to Euler;
  float32 rounding of the refactored form may differ from a simulator evaluating the Euler
  expression literally (only for membranes within an ulp of the threshold).
* ``I(r)``: ``integrate`` (after ``scale(dt*r)`` unless 1).
* ``LI(tau, r, v_leak)``: ``v <- v + (dt/tau)(v_leak - v + r x)``, i.e. ``v <- leak*v + gain*x +
  bias`` with ``leak``, ``gain``, ``bias`` as for LIF -> ``integrate(leak)`` preceded by
  ``scale(gain, shift=bias)`` unless gain == 1 and bias == 0 (a leak that rounds to 1 gives the
  plain ``integrate``). Like ``I``, it may be the output or feed other nodes (a dense value).
  Same float32 rounding caveat as LIF. The membrane starts at 0 (Norse starts its LI at
  ``v_leak``).
* NIR's ``v_reset != 0``, ``v_threshold <= 0``, per-element (not per-channel) neuron
  parameters, non-finite or zero ``tau``, ``CubaLI``/``CubaLIF`` (second state),
  ``Delay`` of other than one step, ``Threshold``, nested graphs, several inputs/outputs:
  ModelError.
* NIR's IF/LIF compare with strict ``>`` and reset to a value: they map to Dspike (hard reset,
  strict ``>``), never to DSR (``>=``, subtractive reset).
* Float64 NIR arrays are rounded to float32 (snnsim's float precision). Derived leaks and gains
  are computed in float64 and rounded once; a gain within 4 float32 ulps of 1 is read as 1 (tau
  and r stored separately in float32 cannot say "exactly 1" more precisely).
* An Input of shape ``[1, *shape]`` whose consumers expect ``shape`` (a traced batch dimension)
  is read as ``shape``. NIR has no input kind: ``from_nir(..., input_kind="events")`` sets it.

Time step
---------
NIR time is continuous (seconds by convention); snnsim's is a step count. ``to_nir(g, dt=d)``
writes time constants for a step of ``d`` (default 1: time in steps) and ``from_nir(ng, dt=d)``
reads them with Euler step ``d``. snnTorch and SpikingJelly use ``d = 1e-4``. The behaviour of
snnTorch, SpikingJelly and Norse on these files (threshold comparison, reset, tau) is tested
in ``tests/test_nir_peers.py`` and summarised in ``docs/nir.md``.
"""

from __future__ import annotations

import importlib
import json
import os
import re
from types import ModuleType
from typing import Any, Callable

import numpy as np

from .errors import ModelError
from .graph import NEURON_OPS, Graph, InputKind, Node

__all__ = ["to_nir", "from_nir"]

_META_KEY = "snnsim"
_META_VERSION = 1
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
_BIG_TENSORS = ("weight", "bias")  # travel as NIR arrays, not in the JSON metadata


def _nir() -> ModuleType:
    try:
        return importlib.import_module("nir")
    except ImportError as exc:  # pragma: no cover - nir is a dependency of this module
        raise ImportError("NIR interchange needs the 'nir' package (pip install nir)") from exc


# ---------------------------------------------------------------------- export
def _full(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Broadcast a per-channel [C] or [1] parameter to the node's full shape (float32)."""
    a = np.asarray(a, dtype=np.float32).reshape(-1)
    if a.size == 1:
        return np.full(shape, a[0], dtype=np.float32)
    extra = (1,) * (len(shape) - 1)
    return np.ascontiguousarray(
        np.broadcast_to(a.reshape((a.size,) + extra), shape), dtype=np.float32
    )


def _node_meta(n: Node) -> str:
    tensors = {
        k: {
            "shape": [int(d) for d in v.shape],
            "data": [float(x) for x in np.asarray(v, np.float32).reshape(-1)],
        }
        for k, v in n.tensors.items()
        if k not in _BIG_TENSORS
    }
    doc = {
        "version": _META_VERSION,
        "op": n.op,
        "attrs": n.attrs,
        "tensor_keys": list(n.tensors),
        "tensors": tensors,
    }
    if n.op in ("dsr_if", "dsr_lif"):
        doc.update(reset="subtract", compare=">=")
    elif n.op == "dspike_lif":
        doc.update(reset="zero", compare=">")
    return json.dumps(doc)


_DT_PLACEHOLDER = 1.0  # a delay's NIR value is set to one step of the export's dt


def _tau_from_leak(leak: np.ndarray) -> np.ndarray:
    """Time constant in steps, 1/(1-leak), in float64 (rounded to float32 by the caller)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1.0 / (1.0 - leak.astype(np.float64))


def _per_dt(a: np.ndarray, dt: float) -> np.ndarray:
    """A per-step factor as a NIR rate: a/dt, computed in float64, stored as float32."""
    return (np.asarray(a, np.float64) / dt).astype(np.float32)


def _layer_to_nir(
    nir: ModuleType, n: Node, shape: tuple[int, ...], in_shape: tuple[int, ...], meta: Any
) -> Any:
    """The NIR node of a non-neuron node ``n`` (``None`` for a neuron op)."""
    t = n.tensors
    op = n.op
    node: Any = None
    if op == "linear":
        if "bias" in t:
            node = nir.Affine(weight=t["weight"], bias=t["bias"], metadata=meta)
        else:
            node = nir.Linear(weight=t["weight"], metadata=meta)
    elif op == "conv2d":
        bias = t["bias"] if "bias" in t else np.zeros(shape[0], dtype=np.float32)
        node = nir.Conv2d(
            input_shape=tuple(in_shape[1:]),
            weight=t["weight"],
            stride=tuple(n.attrs["stride"]),
            padding=tuple(n.attrs["padding"]),
            dilation=(1, 1),
            groups=1,
            bias=bias,
            metadata=meta,
        )
    elif op == "conv1d":
        bias = t["bias"] if "bias" in t else np.zeros(shape[0], dtype=np.float32)
        node = nir.Conv1d(
            input_shape=int(in_shape[1]),
            weight=t["weight"],
            stride=int(n.attrs["stride"]),
            padding=int(n.attrs["padding"]),
            dilation=1,
            groups=1,
            bias=bias,
            metadata=meta,
        )
    elif op in ("sumpool1d", "avgpool1d"):
        raise ModelError(
            f"node {n.name!r}: NIR has no 1-d pool ({op}); pool after a conv1d by a stride"
        )
    elif op == "delay":
        # one step of dt; the NIR graph keeps the cycle the delay closes
        node = nir.Delay(delay=np.full(shape, _DT_PLACEHOLDER, dtype=np.float32), metadata=meta)
    elif op in ("sumpool2d", "avgpool2d"):
        cls = nir.SumPool2d if op == "sumpool2d" else nir.AvgPool2d
        node = cls(
            kernel_size=np.array(n.attrs["kernel"]),
            stride=np.array(n.attrs["stride"]),
            padding=np.array([0, 0]),
            metadata=meta,
        )
    elif op == "flatten":
        node = nir.Flatten(
            input_type={"input": np.array(in_shape)}, start_dim=0, end_dim=-1, metadata=meta
        )
    elif op == "add":
        node = nir.Scale(scale=np.ones(shape, dtype=np.float32), metadata=meta)
    elif op == "scale":
        if "shift" in t:
            if len(shape) != 1:
                raise ModelError(
                    f"node {n.name!r}: a scale with a shift on a {list(shape)} value has no "
                    "NIR equivalent (NIR Scale has no offset; Affine needs a 1-D input)"
                )
            node = nir.Affine(
                weight=np.diag(_full(t["scale"], shape)),
                bias=_full(t["shift"], shape),
                metadata=meta,
            )
        else:
            node = nir.Scale(scale=_full(t["scale"], shape), metadata=meta)
    return node


def _neuron_to_nir(n: Node, shape: tuple[int, ...], dt: float, meta: Any, nir: ModuleType) -> Any:
    """The NIR node of a neuron or integrate node ``n`` (time constants for step ``dt``)."""
    t = n.tensors
    op = n.op
    if op == "dsr_if":
        node = nir.IF(
            r=_per_dt(np.ones(shape), dt),
            v_threshold=_full(t["fire"], shape),
            v_reset=np.zeros(shape, np.float32),
            metadata=meta,
        )
    elif op in ("dsr_lif", "dspike_lif"):
        leak = _full(t["leak"], shape)
        gain = _full(t["gain"], shape) if op == "dsr_lif" else np.ones(shape, np.float32)
        fire = _full(t["fire"], shape)
        zero = np.zeros(shape, np.float32)
        if np.all(leak == 1.0):
            node = nir.IF(r=_per_dt(gain, dt), v_threshold=fire, v_reset=zero, metadata=meta)
        else:
            steps = _tau_from_leak(leak)  # tau in steps, float64
            node = nir.LIF(
                tau=(steps * dt).astype(np.float32),
                r=(gain * steps).astype(np.float32),
                v_leak=zero,
                v_threshold=fire,
                v_reset=zero,
                metadata=meta,
            )
    elif op == "integrate":
        leak = _full(t["leak"], shape) if "leak" in t else np.ones(shape, np.float32)
        if np.all(leak == 1.0):
            node = nir.I(r=_per_dt(np.ones(shape), dt), metadata=meta)
        else:
            # Euler: v <- v + (dt/tau)(0 - v + r x) = (1 - dt/tau) v + (dt r/tau) x = leak v + x
            steps = _tau_from_leak(leak)  # tau in steps, float64
            node = nir.LI(
                tau=(steps * dt).astype(np.float32),
                r=steps.astype(np.float32),
                v_leak=np.zeros(shape, np.float32),
                metadata=meta,
            )
    else:  # pragma: no cover - validate() rejects unknown ops
        raise ModelError(f"node {n.name!r}: op {op!r} has no NIR mapping")
    return node


def to_nir(graph: Graph, *, dt: float = 1.0) -> Any:
    """Export a float32 graph as a ``nir.NIRGraph`` (see the module docstring for the mapping).

    ``dt`` is the length of one snnsim time step in NIR's (continuous) time unit, seconds by
    NIR's convention: the neurons' ``tau`` and ``r`` are written so that forward Euler with
    step ``dt`` reproduces the discrete update (IF ``r = gain/dt``; LIF ``tau = dt/(1-leak)``,
    ``r = gain/(1-leak)``; I ``r = 1/dt``; LI, the leaky integrate, ``tau = dt/(1-leak)``,
    ``r = 1/(1-leak)``). The default 1 keeps time in steps; snnTorch and SpikingJelly read NIR
    with a fixed step of 1e-4 s, so files meant for them need ``dt=1e-4``. Read such a file
    back with ``from_nir(..., dt=dt)`` when its snnsim metadata is gone (with the metadata the
    round trip is exact whatever ``dt``).

    Raises :class:`~snnsim.errors.ModelError` for int-precision graphs, for an invalid graph and
    for a ``scale`` with a shift on a ``[C, H, W]`` value (NIR has no per-channel offset node);
    ``ValueError`` for a ``dt`` that is not a finite positive number."""
    nir = _nir()
    if not (isinstance(dt, (int, float, np.floating)) and np.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a finite positive number, got {dt!r}")
    dt = float(dt)
    graph.validate()
    if graph.precision != "float32":
        raise ModelError(
            "to_nir: only float32 graphs map to NIR (NIR has no fixed-point semantics); "
            f"got precision {graph.precision!r}"
        )
    shapes = graph.shapes()
    names = {n.name for n in graph.nodes}
    nodes: dict[str, Any] = {"input": nir.Input(input_type={"input": np.array(graph.input_shape)})}
    edges: list[tuple[str, str]] = []
    for n in graph.nodes:
        shape = shapes[n.name]
        in_shape = shapes[n.inputs[0]]
        meta = {_META_KEY: _node_meta(n)}
        node = _layer_to_nir(nir, n, shape, in_shape, meta)
        if node is None:
            node = _neuron_to_nir(n, shape, dt, meta, nir)
        elif n.op == "delay":
            node.delay = np.full(shape, dt, dtype=np.float32)
        nodes[n.name] = node
        for i in n.inputs:
            edges.append((i, n.name))
    out_name = "output"
    k = 0
    while out_name in names:
        out_name = f"output_{k}"
        k += 1
    output = graph.output
    assert output is not None  # validate() requires an output node
    nodes[out_name] = nir.Output(output_type={"output": np.array(list(shapes[output]))})
    edges.append((output, out_name))
    gmeta = {
        "version": _META_VERSION,
        "input_kind": graph.input_kind,
        "input_scale": graph.input_scale,
        "input_signed": graph.input_signed,
        "order": [n.name for n in graph.nodes],
        "output": graph.output,
        "dt": dt,
    }
    try:
        return nir.NIRGraph(nodes=nodes, edges=edges, metadata={_META_KEY: json.dumps(gmeta)})
    except (ValueError, AssertionError) as exc:  # pragma: no cover - a bug in the mapping
        raise ModelError(f"to_nir: NIR rejected the exported graph: {exc}") from exc


# ---------------------------------------------------------------------- import
def _parse_meta(obj: Any) -> dict[str, Any] | None:
    md = getattr(obj, "metadata", None)
    if not isinstance(md, dict) or _META_KEY not in md:
        return None
    v = md[_META_KEY]
    if isinstance(v, np.ndarray) and v.shape == ():
        v = v.item()
    if isinstance(v, bytes):
        v = v.decode("utf8")
    if isinstance(v, dict):
        return v
    try:
        doc = json.loads(v)
    except (TypeError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _f32(a: Any) -> np.ndarray:
    return np.asarray(a, dtype=np.float32)


_UNIT_GAIN_TOL = 4 * 2.0**-24  # a few float32 ulps of 1


def _unit_gain(gain: np.ndarray) -> np.ndarray:
    """A derived input gain (dt*r/tau, dt*r) as float32, read as exactly 1 where it is within a
    few float32 ulps of 1: writers store tau and r separately in float32 (snnTorch: tau =
    dt/(1-beta), r = tau/dt; snnsim: tau = dt/(1-leak), r = 1/(1-leak)), so a gain meant to be 1
    comes back within a couple of ulps of 1. Reading it as 1 adds no scale node and keeps dyadic
    networks exact; the change is of the order of float32's own rounding of tau and r."""
    g = np.asarray(gain, dtype=np.float64)
    return np.where(np.abs(g - 1.0) <= _UNIT_GAIN_TOL, 1.0, g).astype(np.float32)


class _Importer:
    def __init__(self, ng: Any, dt: float, input_kind: InputKind | None = None) -> None:
        self.nir = _nir()
        self.ng = ng
        self.dt = float(dt)
        self.input_kind = input_kind
        self.gmeta = _parse_meta(ng) or {}

    def err(self, name: str, node: Any, why: str) -> ModelError:
        return ModelError(f"NIR node {name!r} ({type(node).__name__}): {why}")

    def _input_signed(self) -> bool:
        """The snnsim metadata's ``input_signed`` (absent: signed, as files without it)."""
        v = self.gmeta.get("input_signed")
        if v is None:
            return True
        if not isinstance(v, bool):
            raise ModelError(
                f"from_nir: snnsim metadata field 'input_signed' must be true or false, got {v!r}"
            )
        return v

    def run(self) -> Graph:
        nir = self.nir
        ng = self.ng
        if not isinstance(ng, nir.NIRGraph):
            raise ModelError(
                f"from_nir: expected a nir.NIRGraph or a path, got {type(ng).__name__}"
            )
        in_key, out_key = self._ends()
        preds: dict[str, list[str]] = {k: [] for k in ng.nodes}
        for a, b in ng.edges:
            if a not in ng.nodes or b not in ng.nodes:
                raise ModelError(f"from_nir: edge ({a!r}, {b!r}) names an unknown node")
            preds[b].append(a)
        in_shape = self._input_shape(in_key, [b for a, b in ng.edges if a == in_key])
        kind: InputKind = self.input_kind or self.gmeta.get("input_kind", "static")
        g = Graph(
            input_shape=in_shape,
            precision="float32",
            input_kind=kind,
            input_scale=self.gmeta.get("input_scale"),
            input_signed=self._input_signed(),
        )
        # NIR name -> snnsim name of the value the node produces
        self.out_of: dict[str, str] = {in_key: "input"}
        self.used: set[str] = {"input"}
        self.g = g
        self.pending_delays: dict[str, str] = {}
        for key in self._topo(preds, in_key, out_key):
            node = ng.nodes[key]
            if isinstance(node, nir.NIRGraph):
                raise self.err(
                    key, node, "nested NIR subgraphs are not supported (flatten the graph first)"
                )
            if isinstance(node, nir.Input):
                continue
            if not preds[key]:
                raise self.err(key, node, "has no incoming edge (unreachable from the Input)")
            if isinstance(node, nir.Delay):
                self._convert_delay(key, node, preds[key])
                continue
            srcs = self._sources(key, preds[key])
            if isinstance(node, nir.Output):
                if len(srcs) != 1:
                    raise self.err(key, node, "the Output must have exactly one incoming edge")
                g.set_output(srcs[0])
                continue
            self._convert(key, node, srcs)
        if g.output is None:
            raise ModelError(
                f"from_nir: the Output node {out_key!r} is not reachable from the Input"
            )
        self._link_delays()
        out = g.node(g.output)
        if out.op not in NEURON_OPS + ("integrate",):
            raise ModelError(
                f"from_nir: the Output node {out_key!r} is fed by {g.output!r} (op {out.op!r}); "
                "snnsim's output must be a spiking neuron or an integrator (IF, LIF or I)"
            )
        order = self.gmeta.get("order")
        if isinstance(order, list) and sorted(order) == sorted(n.name for n in g.nodes):
            pos = {name: i for i, name in enumerate(order)}
            g.nodes.sort(key=lambda n: pos[n.name])
        g.validate()
        return g

    def _input_shape(self, in_key: str, consumers: list[str]) -> tuple[int, ...]:
        """The Input's per-sample shape. Exporters that trace a batched sample (nirtorch's
        ``extract_nir_graph``, used by Norse) write ``[1, *shape]``: a leading 1 is dropped when
        every consumer of the Input expects the shape without it (its declared input type, or an
        Affine/Linear's ``in`` features, or a Conv2d's input channels)."""
        node = self.ng.nodes[in_key]
        shape = tuple(int(d) for d in np.asarray(node.input_type["input"]).reshape(-1))
        if len(shape) < 2 or shape[0] != 1 or not consumers:
            return shape
        rest = shape[1:]
        if all(self._expects(self.ng.nodes[c], rest) for c in consumers):
            return rest
        return shape

    def _expects(self, node: Any, shape: tuple[int, ...]) -> bool:
        nir = self.nir
        declared = getattr(node, "input_type", None) or {}
        want = declared.get("input") if isinstance(declared, dict) else None
        if want is not None and np.asarray(want).size > 0:
            return tuple(int(d) for d in np.asarray(want).reshape(-1)) == shape
        if isinstance(node, (nir.Affine, nir.Linear)):
            return len(shape) == 1 and np.asarray(node.weight).shape[-1] == shape[0]
        if isinstance(node, nir.Conv2d):
            return len(shape) == 3 and np.asarray(node.weight).shape[1] == shape[0]
        return False

    def _topo(self, preds: dict[str, list[str]], in_key: str, out_key: str) -> list[str]:
        """Node keys in an order where every node comes after its predecessors, not counting
        the edges into a NIR ``Delay`` (its value is the previous step's) and, for a cycle
        without one, the edges that close it (found depth-first from the Input; they are read
        as one-step delays, recorded in ``self.back``)."""
        nir = self.nir
        is_delay = {k: isinstance(v, nir.Delay) for k, v in self.ng.nodes.items()}
        succ: dict[str, list[str]] = {k: [] for k in preds}
        for b, ps in preds.items():
            for a in ps:
                succ[a].append(b)
        self.back: set[tuple[str, str]] = set()
        state: dict[str, int] = {}
        roots = [in_key] + [k for k in preds if k != in_key]
        for root in roots:
            if root in state:
                continue
            stack = [(root, iter(succ[root]))]
            state[root] = 1
            while stack:
                k, it = stack[-1]
                nxt = next(it, None)
                if nxt is None:
                    state[k] = 2
                    stack.pop()
                elif is_delay[nxt]:
                    continue
                elif state.get(nxt) == 1:
                    self.back.add((k, nxt))
                elif nxt not in state:
                    state[nxt] = 1
                    stack.append((nxt, iter(succ[nxt])))
        done: set[str] = set()
        order: list[str] = []
        pending = list(self.ng.nodes)
        while pending:
            ready = [
                k
                for k in pending
                if is_delay[k] or all(p in done or (p, k) in self.back for p in preds[k])
            ]
            if not ready:  # pragma: no cover - the depth-first search broke every cycle
                raise ModelError(f"from_nir: the edges form a cycle among {pending}")
            for k in ready:
                done.add(k)
                order.append(k)
            pending = [k for k in pending if k not in done]
        return order

    def _delay_of(self, src_key: str, shape: tuple[int, ...], want: str) -> str:
        """A snnsim delay node of the (later) value of NIR node ``src_key``; its input (itself
        until then) is linked once every node is converted (:meth:`_link_delays`)."""
        name = self._name(want)
        self.g.nodes.append(
            Node(name=name, op="delay", inputs=[name], attrs={"shape": list(shape)})
        )
        self.pending_delays[name] = src_key
        return name

    def _ends(self) -> tuple[str, str]:
        """The keys of the one Input and the one Output node."""
        nir, ng = self.nir, self.ng
        inputs = [k for k, v in ng.nodes.items() if isinstance(v, nir.Input)]
        outputs = [k for k, v in ng.nodes.items() if isinstance(v, nir.Output)]
        if len(inputs) != 1:
            raise ModelError(
                f"from_nir: snnsim graphs have exactly one Input node, got {len(inputs)} ({inputs})"
            )
        if len(outputs) != 1:
            raise ModelError(
                f"from_nir: snnsim graphs have exactly one Output node, got {len(outputs)} "
                f"({outputs})"
            )
        return inputs[0], outputs[0]

    def _sources(self, key: str, preds: list[str]) -> list[str]:
        """The snnsim values feeding NIR node ``key``: a delay for an edge closing a cycle."""
        return [
            self._delay_of(p, self._value_shape(p), f"{p}_prev")
            if (p, key) in self.back
            else self.out_of[p]
            for p in preds
        ]

    def _link_delays(self) -> None:
        for name, src_key in self.pending_delays.items():
            self.g.node(name).inputs = [self.out_of[src_key]]

    def _value_shape(self, key: str) -> tuple[int, ...]:
        """The per-sample shape of NIR node ``key``'s output (its output type, else the shape
        of a full-shape parameter)."""
        node = self.ng.nodes[key]
        out = (getattr(node, "output_type", None) or {}).get("output")
        if out is not None and np.asarray(out).size > 0:
            return tuple(int(d) for d in np.asarray(out).reshape(-1))
        for field in ("v_threshold", "tau", "r", "delay", "bias"):
            a = getattr(node, field, None)
            if a is not None and np.asarray(a).size > 1:
                return tuple(int(d) for d in np.asarray(a).shape)
        raise self.err(key, node, "feeds a cycle but its output shape cannot be told")

    # -- helpers
    def _name(self, want: str) -> str:
        base = (
            want
            if _NAME_RE.match(want) and want != "input"
            else (re.sub(r"[^A-Za-z0-9_.-]", "_", want) or "node")
        )
        if base == "input":
            base = "input_"
        name, k = base, 0
        while name in self.used:
            name = f"{base}_{k}"
            k += 1
        self.used.add(name)
        return name

    def _shape(self, name: str) -> tuple[int, ...]:
        return self.g.shapes()[name]

    def _channel(
        self, key: str, node: Any, field: str, value: Any, shape: tuple[int, ...]
    ) -> np.ndarray:
        """Reduce a NIR parameter (full node shape, [C] or scalar) to snnsim's [C] / [1]."""
        a = np.asarray(value, dtype=np.float64)
        if a.size == 1:
            return a.reshape(1)
        if a.shape == shape:
            if len(shape) == 1:
                return a
            per_c = a.reshape(shape[0], -1)
            if not np.all(per_c == per_c[:, :1]):
                raise self.err(
                    key,
                    node,
                    f"field {field!r} varies within a channel; snnsim neuron and scale "
                    "parameters are per channel",
                )
            return per_c[:, 0].copy()
        if a.shape == (shape[0],):
            return a
        raise self.err(
            key,
            node,
            f"field {field!r} has shape {list(a.shape)}, expected the node shape {list(shape)}",
        )

    def _add_input(self, key: str, srcs: list[str]) -> str:
        if len(srcs) == 1:
            return srcs[0]
        return self.g.add(self._name(f"{key}_sum"), *srcs)

    def _pre_scale(
        self, key: str, src: str, gain: np.ndarray, bias: np.ndarray | None = None
    ) -> str:
        if np.all(gain == 1.0) and (bias is None or np.all(bias == 0.0)):
            return src
        shift = None if bias is None or np.all(bias == 0.0) else bias
        return self.g.scale(self._name(f"{key}_in"), src, scale=gain, shift=shift)

    # -- one node
    def _convert(self, key: str, node: Any, srcs: list[str]) -> None:
        meta = _parse_meta(node)
        if meta is not None and "op" in meta:
            self._convert_meta(key, node, srcs, meta)
        else:
            self._convert_plain(key, node, srcs)

    def _convert_delay(self, key: str, node: Any, preds: list[str]) -> None:
        """NIR ``Delay``: one snnsim time step (``dt``) everywhere -> a ``delay`` node."""
        if len(preds) != 1:
            raise self.err(key, node, f"a delay takes one input, it has {len(preds)}")
        d = np.asarray(node.delay, dtype=np.float64)
        meta = _parse_meta(node) or {}
        if meta.get("op") != "delay" and not np.allclose(d, self.dt, rtol=1e-6, atol=0.0):
            raise self.err(
                key,
                node,
                f"delays of one time step (dt = {self.dt}) only; got {np.unique(d)[:5].tolist()}",
            )
        shape = (
            tuple(int(x) for x in meta["attrs"]["shape"])
            if meta.get("op") == "delay"
            else (tuple(d.shape) if d.size > 1 else self._value_shape(preds[0]))
        )
        self.out_of[key] = self._delay_of(preds[0], shape, key)

    def _convert_meta(self, key: str, node: Any, srcs: list[str], meta: dict[str, Any]) -> None:
        op = meta["op"]
        name = self._name(key)
        keys = set(meta.get("tensor_keys", []))
        tensors: dict[str, np.ndarray] = {}
        for k, spec in meta.get("tensors", {}).items():
            tensors[k] = np.asarray(spec["data"], dtype=np.float32).reshape(spec["shape"])
        if op in ("linear", "conv2d", "conv1d"):
            tensors["weight"] = _f32(node.weight)
            if "bias" in keys:
                tensors["bias"] = _f32(node.bias)
        elif op == "scale" and "scale" not in tensors:
            raise self.err(key, node, "snnsim metadata of a scale lacks its 'scale' tensor")
        if op != "add" and len(srcs) != 1:
            raise self.err(
                key,
                node,
                f"snnsim op {op!r} takes one input, the node has {len(srcs)} incoming edges",
            )
        order = list(meta.get("tensor_keys", tensors))
        if sorted(order) != sorted(tensors):
            raise self.err(
                key, node, f"snnsim metadata lists tensors {order} but holds {sorted(tensors)}"
            )
        arrays = {k: np.ascontiguousarray(tensors[k]) for k in order}
        self.g.nodes.append(
            Node(
                name=name,
                op=op,
                inputs=list(srcs),
                attrs=dict(meta.get("attrs", {})),
                tensors=arrays,
            )
        )
        self.out_of[key] = name

    def _convert_plain(self, key: str, node: Any, srcs: list[str]) -> None:
        nir = self.nir
        src = self._add_input(key, srcs)
        in_shape = self._shape(src)
        converters: list[tuple[Any, Callable[[str, Any, str, tuple[int, ...]], str]]] = [
            ((nir.Affine, nir.Linear), self._plain_affine),
            (nir.Conv2d, self._plain_conv),
            (nir.Conv1d, self._plain_conv1d),
            ((nir.SumPool2d, nir.AvgPool2d), self._plain_pool),
            (nir.Flatten, self._plain_flatten),
            (nir.Scale, self._plain_scale),
            ((nir.IF, nir.LIF), self._plain_spiking),
            (nir.I, self._plain_integrator),
            (nir.LI, self._plain_leaky_integrator),
        ]
        for kinds, convert in converters:
            if isinstance(node, kinds):
                self.out_of[key] = convert(key, node, src, in_shape)
                return
        why = {
            "CubaLIF": "current-based LIF (synaptic state) is not supported",
            "CubaLI": "current-based leaky integrator is not supported",
            "Threshold": "a stateless threshold is not supported",
        }.get(type(node).__name__, "node type not supported by snnsim")
        raise self.err(key, node, why)

    def _plain_affine(self, key: str, node: Any, src: str, in_shape: tuple[int, ...]) -> str:
        """Affine / Linear -> linear."""
        nir = self.nir
        g = self.g
        w = _f32(node.weight)
        if w.ndim != 2:
            raise self.err(key, node, f"weight must be 2-D [out, in], got shape {list(w.shape)}")
        if len(in_shape) != 1:
            raise self.err(
                key,
                node,
                f"input has shape {list(in_shape)}; insert a Flatten before an Affine",
            )
        bias = _f32(node.bias) if isinstance(node, nir.Affine) else None
        out = g.linear(self._name(key), src, w, bias)
        return out

    def _plain_conv(self, key: str, node: Any, src: str, in_shape: tuple[int, ...]) -> str:
        """Conv2d -> conv2d (padding 'valid', 'same' with stride 1 and odd kernels, or numbers)."""
        g = self.g
        if int(np.asarray(node.groups)) != 1:
            raise self.err(key, node, f"groups={node.groups} is not supported (only 1)")
        if any(int(d) != 1 for d in np.asarray(node.dilation).reshape(-1)):
            raise self.err(key, node, f"dilation {node.dilation} is not supported (only 1)")
        w = _f32(node.weight)
        kh, kw = int(w.shape[2]), int(w.shape[3])
        stride = [int(s) for s in np.broadcast_to(np.asarray(node.stride).reshape(-1), (2,))]
        pad = node.padding
        if isinstance(pad, bytes):
            pad = pad.decode()
        if isinstance(pad, np.ndarray) and pad.dtype.kind in "OSU":
            pad = str(pad.item() if pad.shape == () else pad[0])
        if isinstance(pad, str):
            if pad == "valid":
                pad = [0, 0]
            elif pad == "same" and stride == [1, 1] and kh % 2 == 1 and kw % 2 == 1:
                pad = [kh // 2, kw // 2]
            else:
                raise self.err(
                    key,
                    node,
                    f"padding {pad!r} is only supported as 'valid', or 'same' with "
                    "stride 1 and odd kernels",
                )
        else:
            pad = [int(p) for p in np.broadcast_to(np.asarray(pad).reshape(-1), (2,))]
        bias = _f32(node.bias) if getattr(node, "bias", None) is not None else None
        out = g.conv2d(self._name(key), src, w, bias, stride=stride, padding=pad)
        return out

    def _plain_conv1d(self, key: str, node: Any, src: str, in_shape: tuple[int, ...]) -> str:
        """Conv1d -> conv1d (groups 1, dilation 1; padding a number, 'valid', or 'same' with
        stride 1 and an odd kernel)."""
        if int(np.asarray(node.groups)) != 1 or int(np.asarray(node.dilation).reshape(-1)[0]) != 1:
            raise self.err(key, node, "groups and dilation other than 1 are not supported")
        w = _f32(node.weight)
        k = int(w.shape[2])
        stride = int(np.asarray(node.stride).reshape(-1)[0])
        pad = node.padding
        if isinstance(pad, bytes):
            pad = pad.decode()
        if isinstance(pad, str):
            if pad == "valid" or (pad == "same" and stride == 1 and k % 2 == 1):
                pad = 0 if pad == "valid" else k // 2
            else:
                raise self.err(key, node, f"padding {pad!r} is not supported")
        pad = int(np.asarray(pad).reshape(-1)[0])
        bias = _f32(node.bias) if getattr(node, "bias", None) is not None else None
        return self.g.conv1d(self._name(key), src, w, bias, stride=stride, padding=pad)

    def _plain_pool(self, key: str, node: Any, src: str, in_shape: tuple[int, ...]) -> str:
        """SumPool2d / AvgPool2d -> sumpool2d / avgpool2d (no padding)."""
        nir = self.nir
        g = self.g
        if np.any(np.asarray(node.padding) != 0):
            raise self.err(
                key,
                node,
                f"padding {np.asarray(node.padding).tolist()} is not supported (only 0)",
            )
        kernel = [int(k) for k in np.broadcast_to(np.asarray(node.kernel_size).reshape(-1), (2,))]
        stride = [int(s) for s in np.broadcast_to(np.asarray(node.stride).reshape(-1), (2,))]
        fn = g.sumpool2d if isinstance(node, nir.SumPool2d) else g.avgpool2d
        out = fn(self._name(key), src, kernel, stride)
        return out

    def _plain_flatten(self, key: str, node: Any, src: str, in_shape: tuple[int, ...]) -> str:
        """Flatten of the whole sample -> flatten (the identity on a flat value)."""
        g = self.g
        start, end = int(node.start_dim), int(node.end_dim)
        if len(in_shape) == 1:
            return src  # already flat: identity
        if start not in (0, 1) or end not in (-1, len(in_shape) - 1):
            raise self.err(
                key,
                node,
                f"start_dim={start}, end_dim={end} does not flatten the whole sample; "
                "snnsim flattens [C, H, W] to [C*H*W]",
            )
        out = g.flatten(self._name(key), src)
        return out

    def _plain_scale(self, key: str, node: Any, src: str, in_shape: tuple[int, ...]) -> str:
        """Scale -> scale."""
        g = self.g
        s = self._channel(key, node, "scale", node.scale, in_shape)
        out = g.scale(self._name(key), src, scale=s)
        return out

    def _plain_spiking(self, key: str, node: Any, src: str, in_shape: tuple[int, ...]) -> str:
        """IF / LIF (reset to 0) -> an input scale, then dspike_lif (Euler step ``dt``)."""
        nir = self.nir
        g = self.g
        dt = self.dt
        shape = in_shape
        v_reset = self._channel(key, node, "v_reset", node.v_reset, shape)
        if np.any(v_reset != 0):
            raise self.err(
                key,
                node,
                "v_reset != 0 is not supported (snnsim's hard-reset neuron resets to 0)",
            )
        fire = self._channel(key, node, "v_threshold", node.v_threshold, shape)
        if not np.all(fire > 0):
            raise self.err(key, node, "v_threshold must be > 0")
        r = self._channel(key, node, "r", node.r, shape)
        if isinstance(node, nir.IF):
            leak = np.ones(1)
            gain, bias = _unit_gain(dt * r), None
        else:
            tau = self._channel(key, node, "tau", node.tau, shape)
            v_leak = self._channel(key, node, "v_leak", node.v_leak, shape)
            if not np.all(np.isfinite(tau)) or np.any(tau == 0):
                raise self.err(key, node, "tau must be finite and nonzero")
            # float64, then rounded once to snnsim's float32
            leak = _f32(1.0 - dt / tau)
            gain = _unit_gain(dt * r / tau)
            bias = _f32(dt * v_leak / tau)
        src = self._pre_scale(key, src, gain, bias)
        out = g.dspike_lif(self._name(key), src, fire=fire, leak=leak)
        return out

    def _plain_integrator(self, key: str, node: Any, src: str, in_shape: tuple[int, ...]) -> str:
        """I -> an input scale, then integrate."""
        g = self.g
        dt = self.dt
        r = self._channel(key, node, "r", node.r, in_shape)
        src = self._pre_scale(key, src, _unit_gain(dt * r))
        out = g.integrate(self._name(key), src)
        return out

    def _plain_leaky_integrator(
        self, key: str, node: Any, src: str, in_shape: tuple[int, ...]
    ) -> str:
        """LI -> an input scale, then a leaky integrate (Euler step ``dt``)."""
        g = self.g
        dt = self.dt
        r = self._channel(key, node, "r", node.r, in_shape)
        tau = self._channel(key, node, "tau", node.tau, in_shape)
        v_leak = self._channel(key, node, "v_leak", node.v_leak, in_shape)
        if not np.all(np.isfinite(tau)) or np.any(tau == 0):
            raise self.err(key, node, "tau must be finite and nonzero")
        # v <- v + (dt/tau)(v_leak - v + r x) = leak*v + (gain*x + bias), float64 then float32
        leak = _f32(1.0 - dt / tau)
        src = self._pre_scale(key, src, _unit_gain(dt * r / tau), _f32(dt * v_leak / tau))
        out = g.integrate(self._name(key), src, leak=None if np.all(leak == 1.0) else leak)
        return out


def from_nir(nir_graph: Any, *, dt: float = 1.0, input_kind: InputKind | None = None) -> Graph:
    """Import a ``nir.NIRGraph`` (or the path of a NIR HDF5 file) as a float32 Graph.

    Nodes carrying snnsim metadata (written by :func:`to_nir`) come back exactly; other nodes are
    read with the native semantics of the module docstring, discretised with forward Euler and
    step ``dt`` (NIR's time unit, seconds by convention: pass the step the writer used, e.g.
    ``1e-4`` for files written by snnTorch and SpikingJelly). ``input_kind`` (``"static"``,
    ``"events"`` or ``"sequence"``: per-step tensors such as snnTorch's spike trains) overrides
    the input kind, which NIR does not record (default: the snnsim metadata's, else
    ``"static"``). A ``Delay`` of one step (``dt``) is a ``delay`` node; an edge that closes a
    cycle without one (a peer's recurrent connection) is read as one step late. Anything snnsim
    cannot represent raises :class:`~snnsim.errors.ModelError` naming the NIR node and the
    reason. The result is validated."""
    nir = _nir()
    if isinstance(nir_graph, (str, os.PathLike)):
        nir_graph = nir.read(nir_graph)
    if not (dt > 0 and np.isfinite(dt)):
        raise ValueError(f"dt must be a finite positive number, got {dt!r}")
    if input_kind not in (None, "static", "events", "sequence"):
        raise ValueError(
            f"input_kind must be None, 'static', 'events' or 'sequence', got {input_kind!r}"
        )
    return _Importer(nir_graph, dt, input_kind).run()
