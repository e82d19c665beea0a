"""The network description: a small DAG of layers and neurons (see docs/model-format.md).

A :class:`Graph` holds the nodes, their attributes and their tensors (numpy arrays). It is what
the model file stores, what the torch reference executes and what the Rust engine compiles.
Build one with the methods named after the ops::

    g = Graph(input_shape=(784,), precision="float32")
    h = g.linear("fc1", "input", w1)
    s = g.dsr_if("sn1", h, theta=1.0, fire=0.5)
    g.set_output(s)

Validation (:meth:`Graph.validate`) raises :class:`~snnsim.errors.ModelError` naming the node
and field for every violation of the format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

import numpy as np

from .errors import ModelError

Precision = Literal["float32", "int"]
InputKind = Literal["static", "events"]

WEIGHTED_OPS = ("linear", "conv2d")
POOL_OPS = ("avgpool2d", "sumpool2d")
NEURON_OPS = ("dsr_if", "dsr_lif", "dspike_lif")
OUTPUT_OPS = NEURON_OPS + ("integrate",)
ALL_OPS = WEIGHTED_OPS + POOL_OPS + ("flatten", "add", "scale") + OUTPUT_OPS

GRAPH_VERSION = 1
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
_WEIGHT_BITS = {4: (-8, 7), 8: (-128, 127), 16: (-32768, 32767)}

# Per-precision tensor fields of each op: (field, required).
_TENSORS: dict[tuple[str, str], tuple[tuple[str, bool], ...]] = {
    ("linear", "float32"): (("weight", True), ("bias", False)),
    ("linear", "int"): (("weight", True), ("bias", False)),
    ("conv2d", "float32"): (("weight", True), ("bias", False)),
    ("conv2d", "int"): (("weight", True), ("bias", False)),
    ("scale", "float32"): (("scale", True), ("shift", False)),
    ("scale", "int"): (("m", True), ("shift", False)),
    ("dsr_if", "float32"): (("theta", True), ("fire", True)),
    ("dsr_if", "int"): (("theta", True), ("fire", True)),
    ("dsr_lif", "float32"): (("theta", True), ("fire", True), ("leak", True), ("gain", True)),
    ("dsr_lif", "int"): (("theta", True), ("fire", True), ("leak_m", True), ("gain_m", True)),
    ("dspike_lif", "float32"): (("fire", True), ("leak", True)),
    ("dspike_lif", "int"): (("fire", True), ("leak_m", True)),
    ("integrate", "float32"): (("leak", False),),
    ("integrate", "int"): (("leak_m", False),),
}


@dataclass
class Node:
    """One op of the graph: ``name``, ``op``, the names of its ``inputs``, JSON ``attrs`` and
    numpy ``tensors`` (stored in the file as ``"{name}.{field}"``)."""

    name: str
    op: str
    inputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    tensors: dict[str, np.ndarray] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "op": self.op, "inputs": list(self.inputs), **self.attrs}

    def __repr__(self) -> str:
        tensors = ", ".join(f"{k} {v.dtype}{list(v.shape)}" for k, v in self.tensors.items())
        ins = ", ".join(self.inputs)
        return f"Node({self.name!r}, {self.op}, inputs=[{ins}]" + (
            f", tensors: {tensors})" if tensors else ")"
        )


@dataclass
class Graph:
    """A feed-forward spiking network as a DAG. ``input_shape`` is per sample: ``(C, H, W)`` or
    ``(F,)``. ``precision`` is ``"float32"`` or ``"int"`` (integer-exact, SPEC §2).

    ``meta``: what the network was trained with, stored beside the graph in the file's
    ``"snnsim.meta"`` key (docs/model-format.md §1.1): the number of time steps ``T``, the input
    preprocessing and the torch module of every node. Empty for a graph built by hand."""

    input_shape: tuple[int, ...]
    precision: Precision = "float32"
    input_kind: InputKind = "static"
    input_scale: float | None = None
    nodes: list[Node] = field(default_factory=list)
    output: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        """One line: input, precision, the ops in order and the output (no tensor values)."""
        try:
            order = self.topological_order()
        except ModelError:
            order = list(self.nodes)
        n_par = sum(int(a.size) for n in self.nodes for a in n.tensors.values())
        ops = " -> ".join(f"{n.name}:{n.op}" for n in order[:12])
        if len(order) > 12:
            ops += f" -> ... ({len(order) - 12} more)"
        t = f", T={self.meta['T']}" if "T" in self.meta else ""
        return (
            f"Graph(input={self.input_kind} {list(self.input_shape)}, precision={self.precision!r}"
            f"{t}, {len(self.nodes)} nodes, {n_par:,} parameters: {ops or '(empty)'}; "
            f"output={self.output!r})"
        )

    # ------------------------------------------------------------------ queries
    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise ModelError(f"no node named {name!r}")

    @property
    def node_names(self) -> list[str]:
        return [n.name for n in self.topological_order()]

    def topological_order(self) -> list[Node]:
        """Nodes sorted so that every node comes after its inputs (stable: file order breaks
        ties). Raises ModelError on unknown inputs or cycles."""
        by_name: dict[str, Node] = {}
        for n in self.nodes:
            if n.name in by_name:
                raise ModelError(f"node {n.name!r}: duplicate name")
            by_name[n.name] = n
        for n in self.nodes:
            for i in n.inputs:
                if i != "input" and i not in by_name:
                    raise ModelError(f"node {n.name!r}: field 'inputs' names unknown node {i!r}")
        order: list[Node] = []
        done: set[str] = {"input"}
        pending = list(self.nodes)
        while pending:
            ready = [n for n in pending if all(i in done for i in n.inputs)]
            if not ready:
                names = ", ".join(repr(n.name) for n in pending)
                raise ModelError(f"the edges do not form a DAG: cycle among nodes {names}")
            for n in ready:
                order.append(n)
                done.add(n.name)
            pending = [n for n in pending if n.name not in done]
        return order

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-sample output shape of every node (and of ``"input"``); validates as it goes."""
        shapes: dict[str, tuple[int, ...]] = {"input": tuple(int(d) for d in self.input_shape)}
        for n in self.topological_order():
            shapes[n.name] = _infer_shape(n, [shapes[i] for i in n.inputs], self.precision)
        return shapes

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Check everything docs/model-format.md requires; raise ModelError naming the node
        and field of the first violation."""
        if self.precision not in ("float32", "int"):
            raise ModelError(
                f"graph: field 'precision' must be 'float32' or 'int', got {self.precision!r}"
            )
        if self.input_kind not in ("static", "events"):
            raise ModelError(
                f"input: field 'kind' must be 'static' or 'events', got {self.input_kind!r}"
            )
        shape = tuple(self.input_shape)
        if len(shape) not in (1, 3) or any(
            (not isinstance(d, (int, np.integer))) or d <= 0 for d in shape
        ):
            raise ModelError(
                f"input: field 'shape' must be [C, H, W] or [F] of positive ints, got {list(shape)}"
            )
        if self.input_kind == "events" and (len(shape) != 3 or shape[0] not in (1, 2)):
            raise ModelError(
                f"input: event input needs shape [C, H, W] with C in (1, 2), got {list(shape)}"
            )
        if self.precision == "int" and self.input_kind == "static":
            s = self.input_scale
            if s is None or not np.isfinite(s) or s <= 0:
                raise ModelError(
                    f"input: field 'scale' must be a finite positive float in int precision, got {s!r}"
                )
        for n in self.nodes:
            if not isinstance(n.name, str) or not _NAME_RE.match(n.name) or n.name == "input":
                raise ModelError(
                    f"node {n.name!r}: invalid name (letters, digits, '_', '.', '-'; not 'input')"
                )
            if n.op not in ALL_OPS:
                raise ModelError(f"node {n.name!r}: unknown op {n.op!r}")
            _check_tensors(n, self.precision)
        self.shapes()
        if self.output is None:
            raise ModelError("graph: field 'output' is not set")
        out = self.node(self.output)
        if out.op not in OUTPUT_OPS:
            raise ModelError(
                f"graph: output node {out.name!r} must be a neuron or integrate, not {out.op!r}"
            )

    # ------------------------------------------------------------------ JSON
    def to_json(self) -> dict[str, Any]:
        inp: dict[str, Any] = {"shape": [int(d) for d in self.input_shape], "kind": self.input_kind}
        if self.input_scale is not None:
            inp["scale"] = float(self.input_scale)
        return {
            "version": GRAPH_VERSION,
            "precision": self.precision,
            "input": inp,
            "nodes": [n.to_json() for n in self.nodes],
            "output": self.output,
        }

    def tensor_dict(self) -> dict[str, np.ndarray]:
        return {
            f"{n.name}.{k}": np.ascontiguousarray(v)
            for n in self.nodes
            for k, v in n.tensors.items()
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any], tensors: dict[str, np.ndarray]) -> "Graph":
        """Rebuild a graph from its JSON document and the file's tensors (not validated)."""
        try:
            version = doc["version"]
            if version != GRAPH_VERSION:
                raise ModelError(
                    f"graph: unsupported field 'version' {version!r} (expected {GRAPH_VERSION})"
                )
            inp = doc["input"]
            g = cls(
                input_shape=tuple(inp["shape"]),
                precision=doc["precision"],
                input_kind=inp.get("kind", "static"),
                input_scale=inp.get("scale"),
                output=doc.get("output"),
            )
            raw_nodes = doc["nodes"]
        except (KeyError, TypeError) as exc:
            raise ModelError(f"graph: missing or malformed field {exc}") from None
        if not isinstance(raw_nodes, list):
            raise ModelError("graph: field 'nodes' must be a list")
        used: set[str] = set()
        for raw in raw_nodes:
            if not isinstance(raw, dict) or not {"name", "op", "inputs"} <= raw.keys():
                raise ModelError(f"graph: node entry {raw!r} needs 'name', 'op' and 'inputs'")
            name = raw["name"]
            attrs = {k: v for k, v in raw.items() if k not in ("name", "op", "inputs")}
            prefix = f"{name}."
            own = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            used.update(prefix + k for k in own)
            g.nodes.append(
                Node(name=name, op=raw["op"], inputs=list(raw["inputs"]), attrs=attrs, tensors=own)
            )
        stray = sorted(set(tensors) - used)
        if stray:
            raise ModelError(f"file holds tensors no node owns: {stray[:5]}")
        return g

    # ------------------------------------------------------------------ builder
    def _add(
        self,
        name: str,
        op: str,
        inputs: Sequence[str],
        attrs: dict[str, Any] | None = None,
        tensors: dict[str, Any] | None = None,
    ) -> str:
        if any(n.name == name for n in self.nodes):
            raise ModelError(f"node {name!r}: duplicate name")
        dtype = np.float32 if self.precision == "float32" else None
        arrays: dict[str, np.ndarray] = {}
        for k, v in (tensors or {}).items():
            if v is None:
                continue
            a = np.asarray(v)
            if a.ndim == 0:
                a = a.reshape(1)
            if dtype is not None:
                a = a.astype(dtype)
            arrays[k] = np.ascontiguousarray(a)
        node = Node(name=name, op=op, inputs=list(inputs), attrs=dict(attrs or {}), tensors=arrays)
        self.nodes.append(node)
        return name

    def _weights(self, w: Any, bits: int | None) -> tuple[np.ndarray, dict[str, Any]]:
        if self.precision == "float32":
            return np.asarray(w, dtype=np.float32), {}
        bits = 8 if bits is None else bits
        if bits not in _WEIGHT_BITS:
            raise ModelError(f"weight_bits must be 4, 8 or 16, got {bits}")
        a = np.asarray(w)
        if not np.issubdtype(a.dtype, np.integer):
            raise ModelError(f"int precision weights must be integers, got dtype {a.dtype}")
        return a.astype(np.int16 if bits == 16 else np.int8), {"weight_bits": bits}

    def _int_or_float(self, v: Any) -> Any:
        if v is None:
            return None
        return np.asarray(v, dtype=np.float32 if self.precision == "float32" else np.int32)

    def linear(
        self, name: str, inp: str, weight: Any, bias: Any = None, *, weight_bits: int | None = None
    ) -> str:
        w, attrs = self._weights(weight, weight_bits)
        if w.ndim != 2:
            raise ModelError(
                f"node {name!r}: field 'weight' must be [out, in], got shape {list(w.shape)}"
            )
        attrs.update(in_features=int(w.shape[1]), out_features=int(w.shape[0]))
        return self._add(
            name, "linear", [inp], attrs, {"weight": w, "bias": self._int_or_float(bias)}
        )

    def conv2d(
        self,
        name: str,
        inp: str,
        weight: Any,
        bias: Any = None,
        *,
        stride: int | Sequence[int] = 1,
        padding: int | Sequence[int] = 0,
        weight_bits: int | None = None,
    ) -> str:
        w, attrs = self._weights(weight, weight_bits)
        if w.ndim != 4:
            raise ModelError(
                f"node {name!r}: field 'weight' must be [out, in, kh, kw], got shape {list(w.shape)}"
            )
        attrs.update(
            in_channels=int(w.shape[1]),
            out_channels=int(w.shape[0]),
            kernel=[int(w.shape[2]), int(w.shape[3])],
            stride=_pair(stride),
            padding=_pair(padding),
        )
        return self._add(
            name, "conv2d", [inp], attrs, {"weight": w, "bias": self._int_or_float(bias)}
        )

    def avgpool2d(
        self,
        name: str,
        inp: str,
        kernel: int | Sequence[int],
        stride: int | Sequence[int] | None = None,
        *,
        m: int | None = None,
        f: int | None = None,
    ) -> str:
        attrs: dict[str, Any] = {
            "kernel": _pair(kernel),
            "stride": _pair(stride if stride is not None else kernel),
        }
        if self.precision == "int":
            attrs.update(m=m, f=f)
        return self._add(name, "avgpool2d", [inp], attrs)

    def sumpool2d(
        self,
        name: str,
        inp: str,
        kernel: int | Sequence[int],
        stride: int | Sequence[int] | None = None,
    ) -> str:
        attrs = {"kernel": _pair(kernel), "stride": _pair(stride if stride is not None else kernel)}
        return self._add(name, "sumpool2d", [inp], attrs)

    def flatten(self, name: str, inp: str) -> str:
        return self._add(name, "flatten", [inp])

    def add(self, name: str, *inputs: str) -> str:
        return self._add(name, "add", list(inputs))

    def scale(
        self,
        name: str,
        inp: str,
        scale: Any = None,
        shift: Any = None,
        *,
        m: Any = None,
        f: int | None = None,
    ) -> str:
        if self.precision == "float32":
            return self._add(name, "scale", [inp], {}, {"scale": scale, "shift": shift})
        return self._add(
            name,
            "scale",
            [inp],
            {"f": f},
            {"m": self._int_or_float(m), "shift": self._int_or_float(shift)},
        )

    def dsr_if(self, name: str, inp: str, *, theta: Any, fire: Any) -> str:
        return self._add(
            name,
            "dsr_if",
            [inp],
            {},
            {"theta": self._int_or_float(theta), "fire": self._int_or_float(fire)},
        )

    def dsr_lif(
        self,
        name: str,
        inp: str,
        *,
        theta: Any,
        fire: Any,
        leak: Any = None,
        gain: Any = None,
        leak_m: Any = None,
        gain_m: Any = None,
        f: int | None = None,
    ) -> str:
        if self.precision == "float32":
            return self._add(
                name,
                "dsr_lif",
                [inp],
                {},
                {"theta": theta, "fire": fire, "leak": leak, "gain": gain},
            )
        i = self._int_or_float
        return self._add(
            name,
            "dsr_lif",
            [inp],
            {"f": f},
            {"theta": i(theta), "fire": i(fire), "leak_m": i(leak_m), "gain_m": i(gain_m)},
        )

    def dspike_lif(
        self,
        name: str,
        inp: str,
        *,
        fire: Any,
        leak: Any = None,
        leak_m: Any = None,
        f: int | None = None,
    ) -> str:
        if self.precision == "float32":
            return self._add(name, "dspike_lif", [inp], {}, {"fire": fire, "leak": leak})
        i = self._int_or_float
        return self._add(
            name, "dspike_lif", [inp], {"f": f}, {"fire": i(fire), "leak_m": i(leak_m)}
        )

    def integrate(
        self, name: str, inp: str, *, leak: Any = None, leak_m: Any = None, f: int | None = None
    ) -> str:
        """Non-firing integrator ``V = V + x``; with a leak ``V = leak*V + x`` (float: ``leak``
        ``[C]`` or ``[1]``; int: ``leak_m`` with the fixed-point shift ``f``,
        ``V = fx(leak_m, V, f) + x``)."""
        if self.precision == "float32":
            return self._add(name, "integrate", [inp], {}, {"leak": leak})
        if leak_m is None:
            return self._add(name, "integrate", [inp])
        return self._add(name, "integrate", [inp], {"f": f}, {"leak_m": self._int_or_float(leak_m)})

    def set_output(self, name: str) -> None:
        self.output = name


# ---------------------------------------------------------------------- helpers
def _pair(v: int | Sequence[int]) -> list[int]:
    if isinstance(v, (int, np.integer)):
        return [int(v), int(v)]
    vals = [int(x) for x in v]
    if len(vals) != 2:
        raise ModelError(f"expected an int or a pair of ints, got {v!r}")
    return vals


def _int_attr(n: Node, key: str, lo: int, hi: int | None = None) -> int:
    v = n.attrs.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise ModelError(f"node {n.name!r}: field {key!r} must be an integer, got {v!r}")
    if v < lo or (hi is not None and v > hi):
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ModelError(f"node {n.name!r}: field {key!r} must be {rng}, got {v}")
    return int(v)


def _pair_attr(n: Node, key: str, lo: int) -> tuple[int, int]:
    v = n.attrs.get(key)
    if (
        not isinstance(v, (list, tuple))
        or len(v) != 2
        or not all(
            isinstance(x, (int, np.integer)) and not isinstance(x, bool) and x >= lo for x in v
        )
    ):
        raise ModelError(
            f"node {n.name!r}: field {key!r} must be a pair of integers >= {lo}, got {v!r}"
        )
    return int(v[0]), int(v[1])


def _check_tensors(n: Node, precision: str) -> None:
    spec = _TENSORS.get((n.op, precision), ())
    allowed = {k for k, _ in spec}
    for k in n.tensors:
        if k not in allowed:
            raise ModelError(
                f"node {n.name!r}: unexpected tensor {k!r} for op {n.op!r} in {precision} precision"
            )
    for k, required in spec:
        if required and k not in n.tensors:
            raise ModelError(f"node {n.name!r}: missing tensor {k!r}")
    for k, a in n.tensors.items():
        if precision == "float32":
            if a.dtype != np.float32:
                raise ModelError(f"node {n.name!r}: tensor {k!r} must be float32, got {a.dtype}")
            if not np.all(np.isfinite(a)):
                raise ModelError(f"node {n.name!r}: tensor {k!r} holds NaN or inf")
        elif k == "weight":
            bits = _int_attr(n, "weight_bits", 4, 16)
            if bits not in _WEIGHT_BITS:
                raise ModelError(
                    f"node {n.name!r}: field 'weight_bits' must be 4, 8 or 16, got {bits}"
                )
            want = np.int16 if bits == 16 else np.int8
            if a.dtype != want:
                raise ModelError(
                    f"node {n.name!r}: tensor 'weight' must be {np.dtype(want)} for weight_bits={bits}, got {a.dtype}"
                )
            lo, hi = _WEIGHT_BITS[bits]
            if a.size and (a.min() < lo or a.max() > hi):
                raise ModelError(
                    f"node {n.name!r}: tensor 'weight' has values outside the int{bits} range [{lo}, {hi}]"
                )
        elif a.dtype != np.int32:
            raise ModelError(
                f"node {n.name!r}: tensor {k!r} must be int32 in int precision, got {a.dtype}"
            )
    for k in ("theta", "fire"):
        if k in n.tensors and n.op in ("dsr_if", "dsr_lif") and not np.all(n.tensors[k] > 0):
            raise ModelError(f"node {n.name!r}: tensor {k!r} must be > 0 everywhere")
    if n.op == "dspike_lif" and "fire" in n.tensors and not np.all(n.tensors["fire"] > 0):
        raise ModelError(f"node {n.name!r}: tensor 'fire' must be > 0 everywhere")
    if precision == "int":
        for k in ("leak_m", "gain_m"):
            if k in n.tensors and not np.all(n.tensors[k] >= 0):
                raise ModelError(f"node {n.name!r}: tensor {k!r} must be >= 0")
        if n.op in ("dsr_lif", "dspike_lif", "scale") or (n.op == "avgpool2d"):
            _int_attr(n, "f", 1, 31)
        if n.op == "integrate" and ("leak_m" in n.tensors or n.attrs.get("f") is not None):
            _int_attr(n, "f", 1, 31)
        if n.op == "avgpool2d":
            _int_attr(n, "m", 0, 2**31 - 1)


def _channel_param(n: Node, key: str, channels: int) -> None:
    a = n.tensors.get(key)
    if a is not None and a.shape not in ((channels,), (1,)):
        raise ModelError(
            f"node {n.name!r}: tensor {key!r} must have shape [{channels}] or [1], got {list(a.shape)}"
        )


def _infer_shape(n: Node, ins: list[tuple[int, ...]], precision: str) -> tuple[int, ...]:
    def need(count: int | None) -> None:
        if (count is None and len(ins) < 2) or (count is not None and len(ins) != count):
            want = "at least 2" if count is None else str(count)
            raise ModelError(
                f"node {n.name!r}: field 'inputs' must name {want} input(s), got {len(ins)}"
            )

    op = n.op
    if op == "linear":
        need(1)
        fin, fout = _int_attr(n, "in_features", 1), _int_attr(n, "out_features", 1)
        if ins[0] != (fin,):
            raise ModelError(
                f"node {n.name!r}: input shape {list(ins[0])} does not match in_features={fin} (flatten first?)"
            )
        w = n.tensors["weight"]
        if w.shape != (fout, fin):
            raise ModelError(
                f"node {n.name!r}: tensor 'weight' must have shape [{fout}, {fin}], got {list(w.shape)}"
            )
        if "bias" in n.tensors and n.tensors["bias"].shape != (fout,):
            raise ModelError(
                f"node {n.name!r}: tensor 'bias' must have shape [{fout}], got {list(n.tensors['bias'].shape)}"
            )
        return (fout,)
    if op == "conv2d":
        need(1)
        cin, cout = _int_attr(n, "in_channels", 1), _int_attr(n, "out_channels", 1)
        kh, kw = _pair_attr(n, "kernel", 1)
        sh, sw = _pair_attr(n, "stride", 1)
        ph, pw = _pair_attr(n, "padding", 0)
        if len(ins[0]) != 3 or ins[0][0] != cin:
            raise ModelError(f"node {n.name!r}: input shape {list(ins[0])} is not [{cin}, H, W]")
        _, h, w_ = ins[0]
        ho, wo = (h + 2 * ph - kh) // sh + 1, (w_ + 2 * pw - kw) // sw + 1
        if h + 2 * ph < kh or w_ + 2 * pw < kw:
            raise ModelError(
                f"node {n.name!r}: kernel {[kh, kw]} larger than the padded input {[h + 2 * ph, w_ + 2 * pw]}"
            )
        w = n.tensors["weight"]
        if w.shape != (cout, cin, kh, kw):
            raise ModelError(
                f"node {n.name!r}: tensor 'weight' must have shape {[cout, cin, kh, kw]}, got {list(w.shape)}"
            )
        if "bias" in n.tensors and n.tensors["bias"].shape != (cout,):
            raise ModelError(
                f"node {n.name!r}: tensor 'bias' must have shape [{cout}], got {list(n.tensors['bias'].shape)}"
            )
        return (cout, ho, wo)
    if op in POOL_OPS:
        need(1)
        kh, kw = _pair_attr(n, "kernel", 1)
        sh, sw = _pair_attr(n, "stride", 1)
        if len(ins[0]) != 3:
            raise ModelError(f"node {n.name!r}: input shape {list(ins[0])} is not [C, H, W]")
        c, h, w_ = ins[0]
        if h < kh or w_ < kw:
            raise ModelError(f"node {n.name!r}: kernel {[kh, kw]} larger than the input {[h, w_]}")
        return (c, (h - kh) // sh + 1, (w_ - kw) // sw + 1)
    if op == "flatten":
        need(1)
        return (int(np.prod(ins[0])),)
    if op == "add":
        need(None)
        if any(s != ins[0] for s in ins):
            raise ModelError(
                f"node {n.name!r}: add needs identical input shapes, got {[list(s) for s in ins]}"
            )
        return ins[0]
    # elementwise with per-channel parameters: scale and neurons
    need(1)
    for key in n.tensors:
        _channel_param(n, key, ins[0][0])
    return ins[0]
