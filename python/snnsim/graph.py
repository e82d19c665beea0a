"""The network description: a small DAG of layers and neurons (see docs/model-format.md).

A :class:`Graph` holds the nodes, their attributes and their tensors (numpy arrays). It is what
the model file stores, what the torch reference executes and what the Rust engine compiles.
Build one with the methods named after the ops::

    g = Graph(input_shape=(784,), precision="float32")
    h = g.linear("fc1", "input", w1)
    s = g.dsr_if("sn1", h, theta=1.0, fire=0.5)
    g.set_output(s)

Validation (:meth:`Graph.validate`) raises :class:`~snnsim.errors.ModelError` naming the node
and field for every violation of the format. There is one validator: the engine's
(``snnsim._core.validate_file``), which checks the bytes the graph would be saved as, so a graph
validates exactly when its file loads. The builder methods check what the file cannot show
(integer values that would wrap in their dtype, values that overflow float32).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

import numpy as np
import numpy.typing as npt

from . import container
from .errors import ModelError

Precision = Literal["float32", "int"]
InputKind = Literal["static", "events", "sequence"]
#: A tensor argument of the builder: a numpy array, a torch tensor, a nested list or a scalar
#: (anything ``numpy.asarray`` takes; a scalar is one value shared by every channel).
Values = npt.ArrayLike
#: A kernel, stride or padding: one int for both axes or a pair ``(height, width)``, in pixels.
Pair = int | Sequence[int]

WEIGHTED_OPS = ("linear", "conv2d", "conv1d")
POOL_OPS = ("avgpool2d", "sumpool2d", "avgpool1d", "sumpool1d")
#: 1-d ops (on ``[C, L]`` values) and the 2-d op each runs as (height 1).
ONE_D_OPS = {"conv1d": "conv2d", "avgpool1d": "avgpool2d", "sumpool1d": "sumpool2d"}
NEURON_OPS = ("dsr_if", "dsr_lif", "dspike_lif")
OUTPUT_OPS = NEURON_OPS + ("integrate",)
ALL_OPS = WEIGHTED_OPS + POOL_OPS + ("flatten", "add", "scale", "delay") + OUTPUT_OPS

GRAPH_VERSION = 1
_WEIGHT_BITS = {4: (-8, 7), 8: (-128, 127), 16: (-32768, 32767)}
_I32 = (int(np.iinfo(np.int32).min), int(np.iinfo(np.int32).max))


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
        """The node's entry in the graph JSON: name, op, inputs and attributes."""
        return {"name": self.name, "op": self.op, "inputs": list(self.inputs), **self.attrs}

    def __repr__(self) -> str:
        tensors = ", ".join(f"{k} {v.dtype}{list(v.shape)}" for k, v in self.tensors.items())
        ins = ", ".join(self.inputs)
        return f"Node({self.name!r}, {self.op}, inputs=[{ins}]" + (
            f", tensors: {tensors})" if tensors else ")"
        )


@dataclass
class Graph:
    """A spiking network: a DAG of layers and neurons, plus one-step ``delay`` nodes through
    which cycles (recurrent connections) may pass. ``input_shape`` is per sample: ``(C, H, W)``,
    ``(C, L)`` or ``(F,)``. ``input_kind``: ``"static"`` (one tensor applied at every step),
    ``"events"`` (per-step event counts) or ``"sequence"`` (per-step tensors, binary or graded).
    ``precision`` is ``"float32"`` or ``"int"`` (integer-exact, docs/semantics.md §2).
    ``input_scale`` (int precision, static or sequence input): the quantisation step of a float
    input; ``input_signed``: its integers lie in ``[-128, 127]`` (True, the default) or in
    ``[0, 255]`` (False: an unsigned 8-bit input, lossless for 8-bit images).

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
    input_signed: bool = True

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
        """The node called ``name``; :class:`~snnsim.errors.ModelError` when there is none."""
        for n in self.nodes:
            if n.name == name:
                return n
        raise ModelError(f"no node named {name!r}")

    @property
    def node_names(self) -> list[str]:
        """The node names in topological order (the engine's order)."""
        return [n.name for n in self.topological_order()]

    def topological_order(self) -> list[Node]:
        """Nodes sorted so that every node comes after its inputs; among nodes that are ready,
        the one listed first goes first (the engine's order, docs/model-format.md §1). The input
        of a ``delay`` node is its previous step's value, not an edge of this order. Raises
        ModelError on duplicate names, unknown inputs or cycles not through a delay. O(n log n)."""
        by_name: dict[str, int] = {}
        for i, n in enumerate(self.nodes):
            if n.name in by_name:
                raise ModelError(f"node {n.name!r}: duplicate name")
            by_name[n.name] = i
        indeg = [0] * len(self.nodes)
        users: list[list[int]] = [[] for _ in self.nodes]
        for i, n in enumerate(self.nodes):
            for src in n.inputs:
                if src == "input":
                    continue
                if n.op == "delay":  # may name a node still to be added (the engine checks)
                    continue
                j = by_name.get(src)
                if j is None:
                    raise ModelError(f"node {n.name!r}: field 'inputs' names unknown node {src!r}")
                indeg[i] += 1
                users[j].append(i)
        ready = [i for i, d in enumerate(indeg) if d == 0]
        heapq.heapify(ready)
        order: list[Node] = []
        while ready:
            i = heapq.heappop(ready)
            order.append(self.nodes[i])
            for u in users[i]:
                indeg[u] -= 1
                if indeg[u] == 0:
                    heapq.heappush(ready, u)
        if len(order) != len(self.nodes):
            names = ", ".join(repr(n.name) for n, d in zip(self.nodes, indeg, strict=True) if d > 0)
            raise ModelError(f"the edges do not form a DAG: cycle among nodes {names}")
        return order

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-sample output shape of every node (and of ``"input"``); validates as it goes."""
        shapes: dict[str, tuple[int, ...]] = {"input": tuple(int(d) for d in self.input_shape)}
        order = self.topological_order()
        for n in order:
            if n.op == "delay":
                shapes[n.name] = _delay_shape(n)
                continue
            shapes[n.name] = _infer_shape(n, [shapes[i] for i in n.inputs], self.precision)
        for n in order:
            if (
                n.op == "delay"
                and len(n.inputs) == 1
                and n.inputs[0] in shapes
                and shapes[n.inputs[0]] != shapes[n.name]
            ):
                raise ModelError(
                    f"node {n.name!r}: field 'shape' {list(shapes[n.name])} differs from the "
                    f"shape {list(shapes[n.inputs[0]])} of its input {n.inputs[0]!r}"
                )
        return shapes

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Check everything docs/model-format.md requires; raise ModelError naming the node
        and field of the first violation.

        The check is the engine's (``snnsim._core.validate_file``) on the bytes this graph is
        saved as, so ``validate()`` passes exactly when :func:`snnsim.save` then
        :func:`snnsim.load` succeed."""
        data = container.encode(self.to_json(), self.tensor_dict(), self.meta, self.input_shape)
        container.check_bytes(data, "graph")

    # ------------------------------------------------------------------ JSON
    def to_json(self) -> dict[str, Any]:
        """The graph JSON document of the file (docs/model-format.md), without the tensors."""
        # values as given (numpy scalars are converted when encoded): a float or bool in the
        # shape must reach the validator as such, not be truncated to an int here
        inp: dict[str, Any] = {"shape": list(self.input_shape), "kind": self.input_kind}
        if self.input_scale is not None:
            inp["scale"] = self.input_scale
        if self.input_signed is not True:  # written as given: the validator names a non-bool
            inp["signed"] = self.input_signed
        return {
            "version": GRAPH_VERSION,
            "precision": self.precision,
            "input": inp,
            "nodes": [n.to_json() for n in self.nodes],
            "output": self.output,
        }

    def tensor_dict(self) -> dict[str, np.ndarray]:
        """Every tensor under its file name ``"{node}.{field}"``, C-contiguous."""
        return {
            f"{n.name}.{k}": np.ascontiguousarray(v)
            for n in self.nodes
            for k, v in n.tensors.items()
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any], tensors: dict[str, np.ndarray]) -> "Graph":
        """Rebuild a graph from its JSON document and the file's tensors (not validated: a
        file is validated by the engine before it is read, see :func:`snnsim.model_file.load`)."""
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
                input_signed=True if inp.get("signed") is None else inp["signed"],
            )
            raw_nodes = doc["nodes"]
        except (KeyError, TypeError) as exc:
            raise ModelError(f"graph: missing or malformed field {exc}") from None
        if not isinstance(raw_nodes, list):
            raise ModelError("graph: field 'nodes' must be a list")
        # "{node}.{field}": field names hold no '.', node names may ("fc" and "fc.sn")
        owned: dict[str, dict[str, np.ndarray]] = {}
        for key, value in tensors.items():
            node_name, _, fld = key.rpartition(".")
            owned.setdefault(node_name, {})[fld] = value
        names: set[str] = set()
        for raw in raw_nodes:
            if not isinstance(raw, dict) or not {"name", "op", "inputs"} <= raw.keys():
                raise ModelError(f"graph: node entry {raw!r} needs 'name', 'op' and 'inputs'")
            name = raw["name"]
            names.add(name)
            attrs = {k: v for k, v in raw.items() if k not in ("name", "op", "inputs")}
            g.nodes.append(
                Node(
                    name=name,
                    op=raw["op"],
                    inputs=list(raw["inputs"]),
                    attrs=attrs,
                    tensors=owned.get(name, {}),
                )
            )
        stray = sorted(k for k in tensors if k.rpartition(".")[0] not in names)
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
        tensors: dict[str, Values | None] | None = None,
    ) -> str:
        if any(n.name == name for n in self.nodes):
            raise ModelError(f"node {name!r}: duplicate name")
        arrays: dict[str, np.ndarray] = {}
        for k, v in (tensors or {}).items():
            if v is None:
                continue
            a = _as_array(name, k, v)
            if a.ndim == 0:
                a = a.reshape(1)
            if self.precision == "float32":
                a = _to_float32(name, k, a)
            arrays[k] = np.ascontiguousarray(a)
        node = Node(name=name, op=op, inputs=list(inputs), attrs=dict(attrs or {}), tensors=arrays)
        self.nodes.append(node)
        return name

    def _weights(self, name: str, w: Values, bits: int | None) -> tuple[np.ndarray, dict[str, Any]]:
        a = _as_array(name, "weight", w)
        if self.precision == "float32":
            return _to_float32(name, "weight", a), {}
        bits = 8 if bits is None else bits
        if bits not in _WEIGHT_BITS:
            raise ModelError(f"node {name!r}: weight_bits must be 4, 8 or 16, got {bits}")
        lo, hi = _WEIGHT_BITS[bits]
        return _to_int(name, "weight", a, lo, hi, f"int{bits}").astype(
            np.int16 if bits == 16 else np.int8
        ), {"weight_bits": bits}

    def _int_or_float(self, name: str, fld: str, v: Values | None) -> np.ndarray | None:
        """A parameter tensor: float32 in float precision, int32 in int precision (whole
        numbers within the int32 range; anything else raises instead of wrapping)."""
        if v is None:
            return None
        a = _as_array(name, fld, v)
        if self.precision == "float32":
            return _to_float32(name, fld, a)
        return _to_int(name, fld, a, *_I32, "int32").astype(np.int32)

    def linear(
        self,
        name: str,
        inp: str,
        weight: Values,
        bias: Values | None = None,
        *,
        weight_bits: int | None = None,
    ) -> str:
        """Add a fully connected node ``y = weight @ x + bias`` on the node ``inp`` (whose value
        must be ``[in]``; flatten a ``[C, H, W]`` value first) and return ``name``.

        ``weight`` is ``[out, in]``, ``bias`` ``[out]`` (optional), in the units of the node's
        output per unit of input (float: any float32 values; int: whole numbers, the weights
        within ``weight_bits`` (4, 8 or 16; default 8) and the bias an int32 in the
        accumulator's scale). Values that would wrap or overflow float32 raise
        :class:`~snnsim.errors.ModelError` naming the node and field."""
        w, attrs = self._weights(name, weight, weight_bits)
        if w.ndim != 2:
            raise ModelError(
                f"node {name!r}: field 'weight' must be [out, in], got shape {list(w.shape)}"
            )
        attrs.update(in_features=int(w.shape[1]), out_features=int(w.shape[0]))
        return self._add(
            name,
            "linear",
            [inp],
            attrs,
            {"weight": w, "bias": self._int_or_float(name, "bias", bias)},
        )

    def conv2d(
        self,
        name: str,
        inp: str,
        weight: Values,
        bias: Values | None = None,
        *,
        stride: Pair = 1,
        padding: Pair = 0,
        weight_bits: int | None = None,
    ) -> str:
        """Add a 2-d convolution (torch's ``conv2d``, cross-correlation, zero padding) on the
        ``[C, H, W]`` value of ``inp`` and return ``name``.

        ``weight`` is ``[out, in, kh, kw]``, ``bias`` ``[out]`` (optional); ``stride`` and
        ``padding`` in pixels (one int or ``(height, width)``). The output is ``[out, Ho, Wo]``
        with ``Ho = (H + 2*ph - kh) // sh + 1``. Value rules as :meth:`linear`."""
        w, attrs = self._weights(name, weight, weight_bits)
        if w.ndim != 4:
            raise ModelError(
                f"node {name!r}: field 'weight' must be [out, in, kh, kw], "
                f"got shape {list(w.shape)}"
            )
        attrs.update(
            in_channels=int(w.shape[1]),
            out_channels=int(w.shape[0]),
            kernel=[int(w.shape[2]), int(w.shape[3])],
            stride=_pair(stride),
            padding=_pair(padding),
        )
        return self._add(
            name,
            "conv2d",
            [inp],
            attrs,
            {"weight": w, "bias": self._int_or_float(name, "bias", bias)},
        )

    def conv1d(
        self,
        name: str,
        inp: str,
        weight: Values,
        bias: Values | None = None,
        *,
        stride: int = 1,
        padding: int = 0,
        weight_bits: int | None = None,
    ) -> str:
        """Add a 1-d convolution (torch's ``conv1d``, zero padding) on the ``[C, L]`` value of
        ``inp`` (e.g. frequency channels of an audio event stream) and return ``name``.

        ``weight`` is ``[out, in, k]``, ``bias`` ``[out]`` (optional); ``stride`` and
        ``padding`` in elements. The output is ``[out, Lo]`` with ``Lo = (L + 2*padding - k) //
        stride + 1``. Value rules as :meth:`linear`."""
        w, attrs = self._weights(name, weight, weight_bits)
        if w.ndim != 3:
            raise ModelError(
                f"node {name!r}: field 'weight' must be [out, in, k], got shape {list(w.shape)}"
            )
        attrs.update(
            in_channels=int(w.shape[1]),
            out_channels=int(w.shape[0]),
            kernel=int(w.shape[2]),
            stride=_one(stride, "stride"),
            padding=_one(padding, "padding"),
        )
        return self._add(
            name,
            "conv1d",
            [inp],
            attrs,
            {"weight": w, "bias": self._int_or_float(name, "bias", bias)},
        )

    def avgpool1d(
        self,
        name: str,
        inp: str,
        kernel: int,
        stride: int | None = None,
        *,
        m: int | None = None,
        f: int | None = None,
    ) -> str:
        """Add a 1-d average pool (no padding) over windows of ``kernel`` elements at ``stride``
        (default: the kernel) on a ``[C, L]`` value; rules as :meth:`avgpool2d` (int: ``m /
        2^f`` approximates ``1 / kernel``)."""
        attrs: dict[str, Any] = {
            "kernel": _one(kernel, "kernel"),
            "stride": _one(stride if stride is not None else kernel, "stride"),
        }
        if self.precision == "int":
            attrs.update(m=m, f=f)
        return self._add(name, "avgpool1d", [inp], attrs)

    def sumpool1d(self, name: str, inp: str, kernel: int, stride: int | None = None) -> str:
        """Add a 1-d sum pool (no padding) over windows of ``kernel`` elements at ``stride``
        (default: the kernel) on a ``[C, L]`` value; return ``name``."""
        attrs = {
            "kernel": _one(kernel, "kernel"),
            "stride": _one(stride if stride is not None else kernel, "stride"),
        }
        return self._add(name, "sumpool1d", [inp], attrs)

    def delay(self, name: str, inp: str, shape: Sequence[int] | None = None) -> str:
        """Add a one-step delay of ``inp`` and return ``name``: its value at step ``n`` is
        ``inp``'s value at step ``n - 1``, zero at the first step. A recurrent connection is a
        weighted node on a delay of a later neuron (``inp`` may be added after this node); the
        graph may have cycles only through delays. ``shape`` is ``inp``'s per-sample shape,
        needed when ``inp`` is not yet in the graph."""
        if shape is None:
            try:
                shape = self.shapes()[inp]
            except (ModelError, KeyError):
                raise ModelError(
                    f"node {name!r}: give the shape of {inp!r} (it is not in the graph yet)"
                ) from None
        return self._add(name, "delay", [inp], {"shape": [int(d) for d in shape]})

    def avgpool2d(
        self,
        name: str,
        inp: str,
        kernel: Pair,
        stride: Pair | None = None,
        *,
        m: int | None = None,
        f: int | None = None,
    ) -> str:
        """Add an average pool (no padding) over ``kernel`` windows, in pixels, at ``stride``
        (default: the kernel) and return ``name``.

        Float: the window sum divided by ``kh*kw``. Int: ``fx(m, sum, f) = (m*sum + 2^(f-1))
        >> f`` with the multiplier ``m`` in ``[0, 2^31 - 1]`` and ``f`` fraction bits in
        ``[1, 31]`` (``m / 2^f`` approximates ``1 / (kh*kw)``); both required in int precision,
        ignored in float."""
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
        kernel: Pair,
        stride: Pair | None = None,
    ) -> str:
        """Add a sum pool (no padding): the sum of each ``kernel`` window, in pixels, at
        ``stride`` (default: the kernel); return ``name``."""
        attrs = {"kernel": _pair(kernel), "stride": _pair(stride if stride is not None else kernel)}
        return self._add(name, "sumpool2d", [inp], attrs)

    def flatten(self, name: str, inp: str) -> str:
        """Add a node that flattens ``[C, H, W]`` to ``[C*H*W]`` in C, H, W order (torch's
        ``flatten``); return ``name``."""
        return self._add(name, "flatten", [inp])

    def add(self, name: str, *inputs: str) -> str:
        """Add the elementwise sum of two or more nodes of identical shape (a residual join);
        return ``name``."""
        return self._add(name, "add", list(inputs))

    def scale(
        self,
        name: str,
        inp: str,
        scale: Values | None = None,
        shift: Values | None = None,
        *,
        m: Values | None = None,
        f: int | None = None,
    ) -> str:
        """Add a per-channel affine map (a batch norm on a residual stream) and return ``name``.

        Float: ``x*scale + shift`` with ``scale`` and ``shift`` ``[C]`` or one value (``shift``
        optional). Int: ``fx(m, x, f) + shift`` with the int32 multipliers ``m`` ``[C]``, ``f``
        fraction bits in ``[1, 31]`` and an optional int32 ``shift`` ``[C]`` in the output's
        units; ``scale`` is ignored in int precision, ``m`` and ``f`` in float."""
        if self.precision == "float32":
            return self._add(name, "scale", [inp], {}, {"scale": scale, "shift": shift})
        return self._add(
            name,
            "scale",
            [inp],
            {"f": f},
            {
                "m": self._int_or_float(name, "m", m),
                "shift": self._int_or_float(name, "shift", shift),
            },
        )

    def dsr_if(self, name: str, inp: str, *, theta: Values, fire: Values) -> str:
        """Add a DSR integrate-and-fire neuron and return ``name``: ``U = V + x``, a spike when
        ``U >= fire``, then ``V = U - theta*spike`` (reset by subtraction).

        ``theta`` (the spike amplitude subtracted on a spike) and ``fire`` (the firing level)
        are ``[C]`` or one value, both > 0, in the membrane's units (those of the input ``x``;
        int: int32 in the accumulator's scale)."""
        return self._add(
            name,
            "dsr_if",
            [inp],
            {},
            {
                "theta": self._int_or_float(name, "theta", theta),
                "fire": self._int_or_float(name, "fire", fire),
            },
        )

    def dsr_lif(
        self,
        name: str,
        inp: str,
        *,
        theta: Values,
        fire: Values,
        leak: Values | None = None,
        gain: Values | None = None,
        leak_m: Values | None = None,
        gain_m: Values | None = None,
        f: int | None = None,
    ) -> str:
        """Add a DSR leaky integrate-and-fire neuron and return ``name``: ``U = leak*V +
        gain*x`` (int: ``fx(leak_m, V, f) + fx(gain_m, x, f)``), a spike when ``U >= fire``,
        then ``V = U - theta*spike``.

        ``theta`` and ``fire`` as in :meth:`dsr_if`. Float: ``leak`` (the membrane's decay per
        time step) and ``gain`` (the input's factor), ``[C]`` or one value, dimensionless.
        Int: their fixed-point multipliers ``leak_m >= 0`` and ``gain_m`` (int32, any sign),
        with ``f`` fraction bits in ``[1, 31]``."""
        if self.precision == "float32":
            return self._add(
                name,
                "dsr_lif",
                [inp],
                {},
                {"theta": theta, "fire": fire, "leak": leak, "gain": gain},
            )

        def i(fld: str, v: Values | None) -> np.ndarray | None:
            return self._int_or_float(name, fld, v)

        return self._add(
            name,
            "dsr_lif",
            [inp],
            {"f": f},
            {
                "theta": i("theta", theta),
                "fire": i("fire", fire),
                "leak_m": i("leak_m", leak_m),
                "gain_m": i("gain_m", gain_m),
            },
        )

    def dspike_lif(
        self,
        name: str,
        inp: str,
        *,
        fire: Values,
        leak: Values | None = None,
        leak_m: Values | None = None,
        f: int | None = None,
    ) -> str:
        """Add a Dspike leaky integrate-and-fire neuron and return ``name``: ``U = leak*V + x``
        (int: ``fx(leak_m, V, f) + x``), a spike when ``U > fire`` (strict), then ``V = 0`` on
        a spike (reset to zero), else ``V = U``.

        ``fire`` is ``[C]`` or one value, > 0, in the membrane's units (int: an int32 >= 1).
        ``leak`` is the decay per time step (float, dimensionless); ``leak_m >= 0`` with ``f``
        fraction bits in ``[1, 31]`` its int form."""
        if self.precision == "float32":
            return self._add(name, "dspike_lif", [inp], {}, {"fire": fire, "leak": leak})
        return self._add(
            name,
            "dspike_lif",
            [inp],
            {"f": f},
            {
                "fire": self._int_or_float(name, "fire", fire),
                "leak_m": self._int_or_float(name, "leak_m", leak_m),
            },
        )

    def integrate(
        self,
        name: str,
        inp: str,
        *,
        leak: Values | None = None,
        leak_m: Values | None = None,
        f: int | None = None,
    ) -> str:
        """Add a non-firing integrator (the output layer: its membrane is the network's output)
        and return ``name``: ``V = V + x``; with a leak ``V = leak*V + x`` (float: ``leak``
        ``[C]`` or one value, the decay per time step; int: ``leak_m >= 0`` with ``f`` fraction
        bits in ``[1, 31]``, ``V = fx(leak_m, V, f) + x``)."""
        if self.precision == "float32":
            return self._add(name, "integrate", [inp], {}, {"leak": leak})
        if leak_m is None:
            return self._add(name, "integrate", [inp])
        return self._add(
            name,
            "integrate",
            [inp],
            {"f": f},
            {"leak_m": self._int_or_float(name, "leak_m", leak_m)},
        )

    def set_output(self, name: str) -> None:
        """Make the node ``name`` the network's output (a neuron or an ``integrate`` node)."""
        self.output = name


# ---------------------------------------------------------------------- helpers
def _as_array(node: str, fld: str, v: Values) -> np.ndarray:
    """``v`` as a numeric numpy array (bool, integer or real float), else ModelError."""
    try:
        a = np.asarray(v)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"node {node!r}: tensor {fld!r} is not an array ({exc})") from None
    if a.dtype.kind not in "biuf":
        raise ModelError(f"node {node!r}: tensor {fld!r} must hold numbers, got dtype {a.dtype}")
    return a


def _at(idx: tuple[int, ...]) -> str:
    return f" at index {list(idx)}" if idx else ""


def _to_float32(node: str, fld: str, a: np.ndarray) -> np.ndarray:
    """float32 values of ``a``; finite values beyond the float32 range raise (they would
    become inf). NaN and inf stay as they are, for the validator to report."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = a.astype(np.float32)
    if a.dtype.kind == "f":
        over = np.isfinite(a) & ~np.isfinite(out)
        if over.any():
            idx = tuple(int(i) for i in np.argwhere(over)[0])
            raise ModelError(
                f"node {node!r}: tensor {fld!r} value {a[idx].item()!r}{_at(idx)} is beyond "
                "the float32 range"
            )
    return out


def _to_int(node: str, fld: str, a: np.ndarray, lo: int, hi: int, what: str) -> np.ndarray:
    """``a`` checked to hold whole numbers in ``[lo, hi]`` (int64; never wraps)."""
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a) | (a != np.floor(a))
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ModelError(
                f"node {node!r}: tensor {fld!r} must hold whole numbers in int precision, "
                f"got {a[idx].item()!r}{_at(idx)}"
            )
        if a.size and (a.min() < lo or a.max() > hi):
            bad_v = a.min() if a.min() < lo else a.max()
            raise ModelError(
                f"node {node!r}: tensor {fld!r} value {bad_v.item()!r} is outside the {what} "
                f"range [{lo}, {hi}]"
            )
        return a.astype(np.int64)
    if a.size:
        mn, mx = int(a.min()), int(a.max())
        if mn < lo or mx > hi:
            bad_v = mn if mn < lo else mx
            idx = tuple(int(i) for i in np.argwhere(a == bad_v)[0])
            raise ModelError(
                f"node {node!r}: tensor {fld!r} value {bad_v}{_at(idx)} is outside the {what} "
                f"range [{lo}, {hi}] (it would wrap)"
            )
    return a.astype(np.int64)


def _pair(v: Pair) -> list[int]:
    if isinstance(v, (int, np.integer)):
        return [int(v), int(v)]
    vals = [int(x) for x in v]
    if len(vals) != 2:
        raise ModelError(f"expected an int or a pair of ints, got {v!r}")
    return vals


def _one(v: int, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise ModelError(f"{what} of a 1-d op must be an int, got {v!r}")
    return int(v)


def _delay_shape(n: Node) -> tuple[int, ...]:
    v = n.attrs.get("shape")
    if (
        not isinstance(v, (list, tuple))
        or not 1 <= len(v) <= 3
        or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in v)
    ):
        raise ModelError(
            f"node {n.name!r}: field 'shape' must be a list of 1 to 3 integers, got {v!r}"
        )
    if len(n.inputs) != 1:
        raise ModelError(
            f"node {n.name!r}: field 'inputs' must name 1 input(s), got {len(n.inputs)}"
        )
    return tuple(int(d) for d in v)


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


def _infer_shape(n: Node, ins: list[tuple[int, ...]], precision: str) -> tuple[int, ...]:
    """Per-sample output shape of ``n`` from its input shapes. Raises ModelError for what a
    shape cannot be computed from (input counts and ranks, missing attributes); the rest of
    the format (tensor shapes, dtypes, values) is the validator's (:meth:`Graph.validate`)."""
    want = 2 if n.op == "add" else 1
    if len(ins) < want or (n.op != "add" and len(ins) != 1):
        count = "at least 2" if n.op == "add" else "1"
        raise ModelError(
            f"node {n.name!r}: field 'inputs' must name {count} input(s), got {len(ins)}"
        )
    x = ins[0]
    if n.op == "linear":
        fin, fout = _int_attr(n, "in_features", 1), _int_attr(n, "out_features", 1)
        if x != (fin,):
            raise ModelError(
                f"node {n.name!r}: input shape {list(x)} does not match in_features={fin} "
                "(flatten first?)"
            )
        return (fout,)
    if n.op in ONE_D_OPS:
        k, st = _int_attr(n, "kernel", 1), _int_attr(n, "stride", 1)
        pad = _int_attr(n, "padding", 0) if n.op == "conv1d" else 0
        c = _int_attr(n, "out_channels", 1) if n.op == "conv1d" else (x[0] if x else 0)
        if len(x) != 2:
            raise ModelError(f"node {n.name!r}: input shape {list(x)} is not [C, L]")
        if x[1] + 2 * pad < k:
            raise ModelError(
                f"node {n.name!r}: kernel {k} larger than the (padded) input length "
                f"{x[1] + 2 * pad}"
            )
        return (c, (x[1] + 2 * pad - k) // st + 1)
    if n.op in ("conv2d", "avgpool2d", "sumpool2d"):
        (kh, kw), (sh, sw) = _pair_attr(n, "kernel", 1), _pair_attr(n, "stride", 1)
        ph, pw = _pair_attr(n, "padding", 0) if n.op == "conv2d" else (0, 0)
        c = _int_attr(n, "out_channels", 1) if n.op == "conv2d" else (x[0] if x else 0)
        if len(x) != 3:
            raise ModelError(f"node {n.name!r}: input shape {list(x)} is not [C, H, W]")
        h, w = x[1] + 2 * ph, x[2] + 2 * pw
        if h < kh or w < kw:
            raise ModelError(
                f"node {n.name!r}: kernel {[kh, kw]} larger than the (padded) input {[h, w]}"
            )
        return (c, (h - kh) // sh + 1, (w - kw) // sw + 1)
    if n.op == "flatten":
        return (int(np.prod(x)),)
    if n.op == "add" and any(s != x for s in ins):
        raise ModelError(
            f"node {n.name!r}: add needs identical input shapes, got {[list(s) for s in ins]}"
        )
    return x
