"""Torch reference executor of a :class:`~snnsim.graph.Graph` (docs/model-format.md §2-§5).

This is the specification in executable form: the Rust engine must produce the same spikes
(bit for bit in int precision) and the same counts. Two entry points:

* :func:`run_reference` — run a graph on numpy inputs and return the engine's ``RawResult``
  dictionary (see ``_core.pyi``): ``output``, ``output_sum``, ``prediction``, ``counts``,
  ``record``.
* :class:`ReferenceNetwork` — the same per-node step loop as a :class:`torch.nn.Module`
  (``init_state`` / ``step`` / ``forward``), for reuse by the training layer.

Value representation: float precision — float32 tensors; int precision — int64 tensors holding
int32 values (every node value and membrane is checked against the int32 range; the message of
the :class:`~snnsim.errors.SnnsimError` names the node and the 0-based step). Linear, conv and
pool sums in int precision are computed in float64 in a way that is exact (see
:func:`_exact_int_product`) and converted back to int64.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import InputError, SnnsimError
from .graph import (
    NEURON_OPS,
    ONE_D_OPS,
    OUTPUT_OPS,
    POOL_OPS,
    WEIGHTED_OPS,
    Graph,
    Node,
    Precision,
)
from .inputs import input_range
from .neurons import (
    DspikeLIFIntParams,
    DspikeLIFParams,
    DsrIFParams,
    DsrLIFIntParams,
    DsrLIFParams,
    IntegrateIntParams,
    IntegrateParams,
    channel_param,
    check_int32,
    fx,
    neuron_step,
)

__all__ = [
    "COUNT_KEYS",
    "Kind",
    "ReferenceNetwork",
    "ReferenceState",
    "ReferenceTrace",
    "axis_fanout",
    "dense_macs",
    "fanout_map",
    "run_reference",
    "value_kinds",
]

#: Value kind of a node (docs §3).
Kind = Literal["static", "sparse", "dense"]

#: Keys of the counts dictionary, each an array ``[B, L, T]`` (L = graph.node_names order).
COUNT_KEYS = ("spikes", "sops", "macs", "aux_ops", "state_updates")

_EXACT = 2**53  # float64 represents every integer of magnitude below this exactly


# ---------------------------------------------------------------------- static analysis
def _zero_shift(node: Node) -> bool:
    shift = node.tensors.get("shift")
    return shift is None or not np.any(shift)


def value_kinds(graph: Graph, input_kind: Kind = "static") -> dict[str, Kind]:
    """Value kind of ``"input"`` and of every node (docs §3), given the kind of the input
    (``"static"`` for a static image, ``"sparse"`` for per-step event frames or sequences).

    * linear/conv/pools/add/scale with only static inputs: static; flatten keeps its input's kind;
    * neurons: sparse (spikes); pools/add with only sparse inputs and scales without shift (or
      with an all-zero shift) of a sparse input: sparse;
    * a delay: sparse when its input is sparse, else dense (a static input is zero at the first
      step); as its input may depend on it, delays start sparse and turn dense until that holds;
    * everything else (linear/conv outputs of non-static inputs, integrate, mixed adds): dense.
    """
    order = graph.topological_order()
    delay_kind: dict[str, Kind] = {n.name: "sparse" for n in order if n.op == "delay"}
    while True:
        kinds = _kinds_once(order, input_kind, delay_kind)
        want: dict[str, Kind] = {
            n.name: ("sparse" if kinds[n.inputs[0]] == "sparse" else "dense")
            for n in order
            if n.op == "delay"
        }
        if want == delay_kind:
            return kinds
        delay_kind = want


def _kinds_once(
    order: list[Node], input_kind: Kind, delay_kind: dict[str, Kind]
) -> dict[str, Kind]:
    kinds: dict[str, Kind] = {"input": input_kind}
    for n in order:
        if n.op == "delay":
            kinds[n.name] = delay_kind[n.name]
            continue
        ins = [kinds[i] for i in n.inputs]
        k: Kind
        if n.op in NEURON_OPS:
            k = "sparse"
        elif n.op == "integrate":
            k = "dense"
        elif n.op == "flatten":
            k = ins[0]
        elif all(i == "static" for i in ins):
            k = "static"
        elif n.op in POOL_OPS + ("add",) and all(i == "sparse" for i in ins):
            k = "sparse"
        elif n.op == "scale" and ins[0] == "sparse" and _zero_shift(n):
            k = "sparse"
        else:
            k = "dense"
        kinds[n.name] = k
    return kinds


def axis_fanout(size: int, kernel: int, stride: int, padding: int) -> np.ndarray:
    """Along one axis of length ``size``: for each input index, the number of output windows
    (``kernel`` wide, at ``stride``, over the input padded by ``padding`` on both sides) that
    contain it. Padding positions are not counted (clipped). Returns int64 ``[size]``."""
    n_out = (size + 2 * padding - kernel) // stride + 1
    counts = np.zeros(size, dtype=np.int64)
    for o in range(max(n_out, 0)):
        lo = o * stride - padding
        counts[max(lo, 0) : max(min(lo + kernel, size), 0)] += 1
    return counts


def fanout_map(node: Node, in_shape: Sequence[int]) -> np.ndarray:
    """Fan-out of one input element of a conv or pool node as a function of its position:
    int64 ``[H, W]`` (``[1, L]`` for a 1-d op; the same for every input channel). conv:
    ``out_channels x`` the number of output positions whose window contains the element
    (padding clipped); pools: the number of windows containing it."""
    node, in_shape = as_2d(node, in_shape)
    _, h, w = (int(d) for d in in_shape)
    kh, kw = node.attrs["kernel"]
    sh, sw = node.attrs["stride"]
    ph, pw = node.attrs.get("padding", [0, 0]) if node.op == "conv2d" else (0, 0)
    m = np.outer(axis_fanout(h, kh, sh, ph), axis_fanout(w, kw, sw, pw))
    if node.op == "conv2d":
        m = m * int(node.attrs["out_channels"])
    return m.astype(np.int64)


def as_2d(node: Node, in_shape: Sequence[int]) -> tuple[Node, tuple[int, ...]]:
    """A 1-d conv/pool node as the 2-d node it runs as (height 1: kernel ``[1, k]``, weight
    ``[out, in, 1, k]``) and its input shape ``[C, 1, L]``; other nodes unchanged."""
    shape = tuple(int(d) for d in in_shape)
    if node.op not in ONE_D_OPS:
        return node, shape
    a = dict(node.attrs)
    a["kernel"] = [1, int(a["kernel"])]
    a["stride"] = [1, int(a["stride"])]
    if node.op == "conv1d":
        a["padding"] = [0, int(a["padding"])]
    tensors = dict(node.tensors)
    if "weight" in tensors:
        w = tensors["weight"]
        tensors["weight"] = w.reshape(w.shape[0], w.shape[1], 1, w.shape[2])
    return (
        Node(name=node.name, op=ONE_D_OPS[node.op], inputs=node.inputs, attrs=a, tensors=tensors),
        (shape[0], 1, shape[1]),
    )


def _total_fanout(node: Node, in_shape: Sequence[int]) -> int:
    """Sum of the fan-outs of all input elements of a linear/conv/pool node."""
    if node.op == "linear":
        return int(node.attrs["in_features"]) * int(node.attrs["out_features"])
    return int(in_shape[0]) * int(fanout_map(node, in_shape).sum())


def dense_macs(graph: Graph) -> np.ndarray:
    """MACs of the equivalent ANN per node (docs §4): for linear/conv nodes the sum of the
    fan-outs of all input elements, 0 for other nodes. uint64 ``[L]`` in ``graph.node_names``
    order."""
    graph.validate()
    shapes = graph.shapes()
    out = np.zeros(len(graph.nodes), dtype=np.uint64)
    for i, n in enumerate(graph.topological_order()):
        if n.op in WEIGHTED_OPS:
            out[i] = _total_fanout(n, shapes[n.inputs[0]])
    return out


# ---------------------------------------------------------------------- int helpers
def _exact_int_product(
    x: Tensor, fn: Callable[[Tensor], Tensor], wsum_max: int, fan_in: int, where: str
) -> Tensor:
    """``fn`` is a linear map with integer float64 weights (matmul/conv without bias). Return
    ``fn(x)`` exactly as int64 for an int64 ``x`` holding int32 values.

    If ``max|x| * max_o sum_i |w_oi| < 2**53`` every partial sum is an integer below 2**53 and a
    single float64 evaluation is exact, whatever the summation order. Otherwise ``x`` is split
    as ``hi * 2**16 + lo`` (``0 <= lo < 2**16``, ``|hi| <= 2**15``); each half is exact for
    fan-ins below 2**22 (weights at most 2**15 in magnitude)."""
    xmax = int(x.abs().max()) if x.numel() else 0
    if xmax * wsum_max < _EXACT:
        return fn(x.to(torch.float64)).to(torch.int64)
    if fan_in >= 2**22:
        raise SnnsimError(f"{where}: fan-in {fan_in} too large for exact integer evaluation")
    lo = x & 0xFFFF
    hi = x >> 16
    return (fn(hi.to(torch.float64)).to(torch.int64) << 16) + fn(lo.to(torch.float64)).to(
        torch.int64
    )


@contextlib.contextmanager
def _ieee_fp32(device: torch.device) -> Iterator[None]:
    """On CUDA, disable TF32 for float32 matmul and convolution (restored afterwards)."""
    if device.type != "cuda":
        yield
        return
    saved: list[tuple[Any, str, Any]] = []
    targets: list[tuple[Any, str, Any]] = []
    conv = getattr(torch.backends.cudnn, "conv", None)
    mm = torch.backends.cuda.matmul
    if conv is not None and hasattr(conv, "fp32_precision"):
        targets.append((conv, "fp32_precision", "ieee"))
    else:
        targets.append((torch.backends.cudnn, "allow_tf32", False))
    if hasattr(mm, "fp32_precision"):
        targets.append((mm, "fp32_precision", "ieee"))
    else:
        targets.append((mm, "allow_tf32", False))
    try:
        for obj, attr, val in targets:
            saved.append((obj, attr, getattr(obj, attr)))
            setattr(obj, attr, val)
        yield
    finally:
        for obj, attr, val in reversed(saved):
            setattr(obj, attr, val)


# ---------------------------------------------------------------------- per-node module
class _NodeOp(torch.nn.Module):
    """One graph node: its tensors as buffers (float32 in float precision; float64 weights and
    int64 everything else in int precision), its fan-out map and its step computation."""

    # The buffers a node may have (registered from its tensors; only the node's own exist).
    weight: Tensor
    bias: Tensor
    theta: Tensor
    fire: Tensor
    leak: Tensor
    gain: Tensor
    leak_m: Tensor
    gain_m: Tensor
    m: Tensor
    scale: Tensor
    shift: Tensor
    fanmap: Tensor

    def __init__(self, node: Node, precision: Precision, in_shapes: list[tuple[int, ...]]) -> None:
        super().__init__()
        self.one_d = node.op in ONE_D_OPS  # computed as the 2-d op of height 1
        if self.one_d:
            node, shape2 = as_2d(node, in_shapes[0])
            in_shapes = [shape2]
        self.node = node
        self.name = node.name
        self.op = node.op
        self.precision = precision
        self.in_shape = in_shapes[0]
        self.numel_in = [int(np.prod(s)) for s in in_shapes]
        is_int = precision == "int"
        for key, arr in node.tensors.items():
            if is_int:
                dt = torch.float64 if key == "weight" else torch.int64
            else:
                dt = torch.float32
            self.register_buffer(key, torch.as_tensor(np.asarray(arr)).to(dt).clone())
        self.has_bias = "bias" in node.tensors
        self.has_shift = "shift" in node.tensors
        # counting
        self.fan_total = 0
        self.fan_per_element = 0  # linear
        if node.op == "linear":
            self.fan_per_element = int(node.attrs["out_features"])
        if node.op in WEIGHTED_OPS + POOL_OPS:
            self.fan_total = _total_fanout(node, self.in_shape)
        if node.op in ("conv2d",) + POOL_OPS:
            self.register_buffer("fanmap", torch.as_tensor(fanout_map(node, self.in_shape)))
        # exactness bound for int weighted sums
        self.wsum_max = 0
        self.fan_in = 0
        if node.op in WEIGHTED_OPS:
            w = np.abs(node.tensors["weight"].astype(np.int64)).reshape(
                node.tensors["weight"].shape[0], -1
            )
            self.wsum_max = int(w.sum(axis=1).max())
            self.fan_in = int(w.shape[1])

    # ------------------------------------------------------------------ neuron params
    def neuron_params(self) -> Any:
        a, op = self.node.attrs, self.op
        if op == "integrate":
            if self.precision == "float32":
                return IntegrateParams(leak=self.leak) if "leak" in self.node.tensors else None
            return (
                IntegrateIntParams(leak_m=self.leak_m, f=int(a["f"]))
                if "leak_m" in self.node.tensors
                else None
            )
        if op == "dsr_if":
            return DsrIFParams(theta=self.theta, fire=self.fire)
        if self.precision == "float32":
            if op == "dsr_lif":
                return DsrLIFParams(
                    theta=self.theta, fire=self.fire, leak=self.leak, gain=self.gain
                )
            return DspikeLIFParams(fire=self.fire, leak=self.leak)
        if op == "dsr_lif":
            return DsrLIFIntParams(
                theta=self.theta,
                fire=self.fire,
                leak_m=self.leak_m,
                gain_m=self.gain_m,
                f=int(a["f"]),
            )
        return DspikeLIFIntParams(fire=self.fire, leak_m=self.leak_m, f=int(a["f"]))

    # ------------------------------------------------------------------ ops
    def compute(self, ins: list[Tensor], where: str) -> Tensor:
        """Value of a non-neuron node from its input values (batched ``[B, *shape]``)."""
        if self.one_d:
            return self._compute_2d([ins[0].unsqueeze(2)], where).squeeze(2)
        return self._compute_2d(ins, where)

    def _compute_2d(self, ins: list[Tensor], where: str) -> Tensor:
        if self.precision == "float32":
            return self._compute_float(ins)
        out = self._compute_int(ins, where)
        if self.op != "flatten":
            check_int32(out, where)
        return out

    def _compute_float(self, ins: list[Tensor]) -> Tensor:
        a, op, x = self.node.attrs, self.op, ins[0]
        if op == "linear":
            return F.linear(x, self.weight, self.bias if self.has_bias else None)
        if op == "conv2d":
            return F.conv2d(
                x,
                self.weight,
                self.bias if self.has_bias else None,
                stride=tuple(a["stride"]),
                padding=tuple(a["padding"]),
            )
        if op in POOL_OPS:
            kh, kw = a["kernel"]
            s = F.avg_pool2d(x, (kh, kw), tuple(a["stride"]), divisor_override=1)
            return s if op == "sumpool2d" else s / float(kh * kw)
        if op == "flatten":
            return x.flatten(1)
        if op == "add":
            acc = ins[0]
            for t in ins[1:]:
                acc = acc + t
            return acc
        if op == "scale":
            y = x * channel_param(self.scale, x)
            if self.has_shift:
                y = y + channel_param(self.shift, x)
            return y
        raise SnnsimError(f"node {self.name!r}: op {op!r} is not a layer")

    def _compute_int(self, ins: list[Tensor], where: str) -> Tensor:
        a, op, x = self.node.attrs, self.op, ins[0]
        if op == "linear":
            w = self.weight
            y = _exact_int_product(x, lambda t: t @ w.t(), self.wsum_max, self.fan_in, where)
            return y + self.bias if self.has_bias else y
        if op == "conv2d":
            kh, kw = a["kernel"]
            cout = int(a["out_channels"])
            ho, wo = self._out_hw(a, kh, kw)
            wm = self.weight.reshape(cout, -1)

            def conv(t: Tensor) -> Tensor:
                cols = F.unfold(t, (kh, kw), padding=tuple(a["padding"]), stride=tuple(a["stride"]))
                return (wm @ cols).reshape(t.shape[0], cout, ho, wo)

            y = _exact_int_product(x, conv, self.wsum_max, self.fan_in, where)
            return y + self.bias.reshape(1, -1, 1, 1) if self.has_bias else y
        if op in POOL_OPS:
            kh, kw = a["kernel"]
            s = F.avg_pool2d(
                x.to(torch.float64), (kh, kw), tuple(a["stride"]), divisor_override=1
            ).to(torch.int64)
            if op == "sumpool2d":
                return s
            check_int32(s, f"{where}: window sum")
            return fx(torch.tensor(int(a["m"]), dtype=torch.int64, device=s.device), s, int(a["f"]))
        if op == "flatten":
            return x.flatten(1)
        if op == "add":
            acc = ins[0]
            for t in ins[1:]:
                acc = acc + t
            return acc
        if op == "scale":
            y = fx(channel_param(self.m, x, torch.int64), x, int(a["f"]))
            if self.has_shift:
                y = y + channel_param(self.shift, x, torch.int64)
            return y
        raise SnnsimError(f"node {self.name!r}: op {op!r} is not a layer")

    def _out_hw(self, a: dict[str, Any], kh: int, kw: int) -> tuple[int, int]:
        _, h, w = self.in_shape
        ph, pw = a["padding"]
        sh, sw = a["stride"]
        return (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1

    # ------------------------------------------------------------------ counting
    @staticmethod
    def processed(x: Tensor, kind: Kind, n: int, numel: int) -> Tensor:
        """Processed elements of input ``x`` (kind ``kind``) at step ``n``, per sample:
        int64 ``[B]``."""
        b = x.shape[0]
        if kind == "sparse":
            return (x != 0).flatten(1).sum(1)
        full = numel if (kind == "dense" or n == 0) else 0
        return torch.full((b,), full, dtype=torch.int64, device=x.device)

    def fanout_sum(self, x: Tensor, kind: Kind, n: int) -> Tensor:
        """Sum of the fan-outs of the processed elements of the (single) input: int64 [B]."""
        b = x.shape[0]
        if self.one_d:
            x = x.unsqueeze(2)
        if self.op == "linear":
            return self.processed(x, kind, n, self.numel_in[0]) * self.fan_per_element
        if kind == "sparse":
            nz = (x != 0).sum(1, dtype=torch.int64)  # [B, H, W]
            return (nz * self.fanmap).flatten(1).sum(1)
        full = self.fan_total if (kind == "dense" or n == 0) else 0
        return torch.full((b,), full, dtype=torch.int64, device=x.device)


# ---------------------------------------------------------------------- state and results
@dataclass
class ReferenceState:
    """Per-run state of a :class:`ReferenceNetwork`: the membranes of neuron/integrate nodes
    (``[B, *shape]``), the cached values of static nodes (computed at step 0), the number of
    steps done and the kind of the input (``"static"`` or ``"sparse"``)."""

    input_kind: Kind
    step: int = 0
    membranes: dict[str, Tensor] = field(default_factory=dict)
    static_values: dict[str, Tensor] = field(default_factory=dict)
    #: value of every delay node's input at the previous step (absent before the first step)
    delayed: dict[str, Tensor] = field(default_factory=dict)


@dataclass
class ReferenceTrace:
    """What :meth:`ReferenceNetwork.forward` returns.

    * ``outputs``: per-step value of the output node, ``[B, T, *shape]`` (spikes of a neuron,
      membrane ``V[n]`` of an integrate node), in the network's value dtype;
    * ``output_sum``: float64 ``[B, n_out]``: spike count over the steps, or ``V[N]`` for integrate;
    * ``spikes``: recorded neuron nodes, name -> ``[B, T, *shape]`` (value dtype, 0/1);
    * ``counts``: key -> int64 ``[B, L, T]`` (``None`` unless counting was requested);
    * ``steps``: T.
    """

    outputs: Tensor
    output_sum: Tensor
    spikes: dict[str, Tensor]
    counts: dict[str, Tensor] | None
    steps: int


# ---------------------------------------------------------------------- the network
class ReferenceNetwork(torch.nn.Module):
    """Executable form of a validated :class:`Graph`.

    ``value_dtype`` is float32 (float precision) or int64 (int precision, int32 values). Inputs
    are batched tensors: a static input ``[B, *input_shape]`` or frames ``[B, T, *input_shape]``.
    """

    def __init__(self, graph: Graph, *, device: torch.device | str | None = None) -> None:
        super().__init__()
        graph.validate()
        self.graph = graph
        self.precision: Precision = graph.precision
        self.order: list[Node] = graph.topological_order()
        self.node_names: list[str] = [n.name for n in self.order]
        self.shapes: dict[str, tuple[int, ...]] = graph.shapes()
        self.output_name: str = str(graph.output)
        self.value_dtype: torch.dtype = (
            torch.float32 if self.precision == "float32" else torch.int64
        )
        self.node_ops = [
            _NodeOp(n, self.precision, [self.shapes[i] for i in n.inputs]) for n in self.order
        ]
        self.ops = torch.nn.ModuleList(self.node_ops)  # registered (buffers follow .to())
        self._delays = [n for n in self.order if n.op == "delay"]
        self._kinds: dict[str, dict[str, Kind]] = {
            k: value_kinds(graph, k) for k in ("static", "sparse")
        }
        if device is not None:
            self.to(device)

    @property
    def device(self) -> torch.device:
        """The device of the network's buffers (CPU when it has none)."""
        for b in self.buffers():
            return b.device
        return torch.device("cpu")

    def kinds(self, input_kind: Kind) -> dict[str, Kind]:
        """Value kind of every node for an input of kind ``input_kind``."""
        return dict(self._kinds[input_kind])

    def init_state(self, input_kind: Kind = "static") -> ReferenceState:
        """Fresh state (zero membranes, created lazily at the first step)."""
        if input_kind not in ("static", "sparse"):
            raise SnnsimError(f"input kind must be 'static' or 'sparse', got {input_kind!r}")
        return ReferenceState(input_kind=input_kind)

    def check_record(self, record: Iterable[str]) -> list[str]:
        """Validate the names of nodes to record (neuron nodes only); returns them deduplicated."""
        ops = {n.name: n.op for n in self.order}
        if isinstance(record, str):
            record = [record]
        out: list[str] = []
        for name in record:
            if name not in ops:
                raise InputError(f"record: no node named {name!r}")
            if ops[name] not in NEURON_OPS:
                raise InputError(
                    f"record: node {name!r} is a {ops[name]!r} node, only neurons "
                    f"({', '.join(NEURON_OPS)}) can be recorded"
                )
            if name not in out:
                out.append(name)
        return out

    def step(
        self, x: Tensor, state: ReferenceState, *, count: bool = False
    ) -> tuple[dict[str, Tensor], dict[str, Tensor] | None]:
        """Advance every node by one step (step ``state.step``, 0-based) on input ``x``
        (``[B, *input_shape]``, value dtype). Returns the value of every node at this step
        (name -> ``[B, *shape]``; spikes for neurons, the membrane for integrate) and, with
        ``count``, this step's counts (key -> int64 ``[B, L]``)."""
        n = state.step
        kinds = self._kinds[state.input_kind]
        b = x.shape[0]
        dev = x.device
        values: dict[str, Tensor] = {"input": x}
        counts = (
            {
                k: torch.zeros((b, len(self.order)), dtype=torch.int64, device=dev)
                for k in COUNT_KEYS
            }
            if count
            else None
        )
        ctx = _ieee_fp32(dev) if self.precision == "float32" else contextlib.nullcontext()
        with ctx:
            for li, (node, op) in enumerate(zip(self.order, self.node_ops, strict=True)):
                name = node.name
                kind = kinds[name]
                if node.op == "delay":
                    values[name] = self._delayed(state, name, b, dev)
                    continue
                if kind == "static" and n > 0:
                    values[name] = state.static_values[name]
                    continue  # static work is counted at step 0 only
                ins = [values[i] for i in node.inputs]
                where = f"node {name!r} at step {n}"
                if node.op in OUTPUT_OPS:
                    v = state.membranes.get(name)
                    if v is None:
                        v = torch.zeros_like(ins[0])
                    s, v_new = neuron_step(
                        node.op, self.precision, ins[0], v, op.neuron_params(), where=where
                    )
                    state.membranes[name] = v_new
                    values[name] = s if node.op in NEURON_OPS else v_new
                    if counts is not None:
                        counts["state_updates"][:, li] = int(np.prod(self.shapes[name]))
                        if node.op in NEURON_OPS:
                            counts["spikes"][:, li] = (s != 0).flatten(1).sum(1)
                    continue
                out = op.compute(ins, where)
                values[name] = out
                if kind == "static":
                    state.static_values[name] = out
                if counts is None:
                    continue
                in_kinds = [kinds[i] for i in node.inputs]
                if node.op in WEIGHTED_OPS:
                    key = "sops" if in_kinds[0] == "sparse" else "macs"
                    counts[key][:, li] = op.fanout_sum(ins[0], in_kinds[0], n)
                elif node.op in POOL_OPS:
                    counts["aux_ops"][:, li] = op.fanout_sum(ins[0], in_kinds[0], n)
                elif node.op == "add":
                    tot = torch.zeros(b, dtype=torch.int64, device=dev)
                    for t, k, ne in zip(ins, in_kinds, op.numel_in, strict=True):
                        tot = tot + op.processed(t, k, n, ne)
                    counts["aux_ops"][:, li] = tot
                elif node.op == "scale":
                    counts["aux_ops"][:, li] = op.processed(ins[0], in_kinds[0], n, op.numel_in[0])
        state.delayed = {d.name: values[d.inputs[0]] for d in self._delays}
        state.step = n + 1
        return values, counts

    def _delayed(self, state: ReferenceState, name: str, b: int, dev: torch.device) -> Tensor:
        """A delay node's value: its input's value at the previous step (zeros at step 0)."""
        prev = state.delayed.get(name)
        if prev is not None:
            return prev
        return torch.zeros((b, *self.shapes[name]), dtype=self.value_dtype, device=dev)

    def forward(
        self,
        static: Tensor | None = None,
        frames: Tensor | None = None,
        *,
        steps: int | None = None,
        record: Sequence[str] = (),
        count: bool = False,
    ) -> ReferenceTrace:
        """Run a whole sequence from zero state: either ``static`` ``[B, *input_shape]`` applied
        at each of ``steps`` steps, or ``frames`` ``[B, T, *input_shape]`` (one input per step;
        ``steps``, if given, must equal T). Tensors must already have the value dtype."""
        if (static is None) == (frames is None):
            raise InputError("give exactly one of 'static' and 'frames'")
        input_kind: Kind
        if static is not None:
            if steps is None or int(steps) < 1:
                raise InputError(f"steps: a static input needs steps >= 1, got {steps!r}")
            t_steps, input_kind = int(steps), "static"
            inputs = [static] * t_steps
        else:
            assert frames is not None
            t_steps, input_kind = int(frames.shape[1]), "sparse"
            if t_steps < 1:
                raise InputError("frames: need at least one step (frames.shape[1] >= 1)")
            if steps is not None and int(steps) != t_steps:
                raise InputError(f"steps: {steps} does not match frames.shape[1] = {t_steps}")
            inputs = list(frames.unbind(1))  # the per-step views frames[:, n]
        names = self.check_record(record)
        state = self.init_state(input_kind)
        outs: list[Tensor] = []
        rec: dict[str, list[Tensor]] = {k: [] for k in names}
        per_step: dict[str, list[Tensor]] = {k: [] for k in COUNT_KEYS}
        for x in inputs:
            values, c = self.step(x, state, count=count)
            outs.append(values[self.output_name])
            for k in names:
                rec[k].append(values[k])
            if c is not None:
                for k in COUNT_KEYS:
                    per_step[k].append(c[k])
        outputs = torch.stack(outs, dim=1)
        out_node = self.order[self.node_names.index(self.output_name)]
        if out_node.op == "integrate":
            output_sum = outputs[:, -1].flatten(1).to(torch.float64)
        else:
            output_sum = outputs.flatten(2).to(torch.float64).sum(1)
        counts = {k: torch.stack(v, dim=2) for k, v in per_step.items()} if count else None
        return ReferenceTrace(
            outputs=outputs,
            output_sum=output_sum,
            spikes={k: torch.stack(v, dim=1) for k, v in rec.items()},
            counts=counts,
            steps=t_steps,
        )


# ---------------------------------------------------------------------- numpy entry point
def _input_tensor(
    a: Any,
    what: str,
    want_shape: tuple[int, ...],
    precision: str,
    device: torch.device,
    int_range: tuple[int, int],
) -> Tensor:
    arr = np.asarray(a)
    ndim = len(want_shape) + (2 if what == "frames" else 1)
    if arr.ndim != ndim or tuple(arr.shape[ndim - len(want_shape) :]) != want_shape:
        lead = "[B, T, " if what == "frames" else "[B, "
        raise InputError(
            f"{what}: expected shape {lead}{', '.join(map(str, want_shape))}], got "
            f"{list(arr.shape)}"
        )
    if precision == "int":
        if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
            raise InputError(
                f"{what}: int precision needs integer input (int32), got dtype {arr.dtype}"
            )
        if arr.size and (int(arr.min()) < int_range[0] or int(arr.max()) > int_range[1]):
            raise InputError(f"{what}: values must lie in [{int_range[0]}, {int_range[1]}]")
        return torch.as_tensor(arr.astype(np.int64)).to(device)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise InputError(f"{what}: expected a float32 (or integer) array, got dtype {arr.dtype}")
    arr = arr.astype(np.float32)
    if arr.size and not np.all(np.isfinite(arr)):
        raise InputError(f"{what}: holds NaN or inf")
    return torch.as_tensor(arr).to(device)


def run_reference(
    graph: Graph,
    *,
    static: np.ndarray | None = None,
    frames: np.ndarray | None = None,
    steps: int | None = None,
    record: Sequence[str] = (),
    device: torch.device | str | None = None,
) -> dict[str, Any]:
    """Run ``graph`` with the torch reference and return the engine's ``RawResult`` dict.

    Inputs (exactly one): ``static`` ``[B, *input_shape]`` (float32 in float precision; int32
    already-quantised values in int precision, in [-128, 127], or in [0, 255] when the graph's
    ``input_signed`` is False), applied at each of ``steps``
    steps; or ``frames`` ``[B, T, *input_shape]`` (per-step input, event counts; float32 or
    int32), T steps. ``record``: names of neuron nodes whose spikes are returned. ``device``:
    torch device (default CPU).

    Returns ``output`` float64 ``[B, n_out]`` (spike count / T, or ``V[T] / T`` for integrate),
    ``output_sum`` float64 ``[B, n_out]``, ``prediction`` int64 ``[B]`` (first argmax),
    ``counts`` (key -> uint64 ``[B, L, T]``, L in ``graph.node_names`` order) and ``record``
    (name -> uint8 ``[B, T, *shape]``). Raises ModelError for an invalid graph, InputError for
    bad inputs and SnnsimError for an int32 overflow (naming node and step).
    """
    dev = torch.device(device) if device is not None else torch.device("cpu")
    net = ReferenceNetwork(graph, device=dev)
    shape = tuple(int(d) for d in graph.input_shape)
    if (static is None) == (frames is None):
        raise InputError("give exactly one of 'static' and 'frames'")
    i32 = (-(2**31), 2**31 - 1)
    with torch.inference_mode():
        if static is not None:
            xs = _input_tensor(
                static,
                "static",
                shape,
                graph.precision,
                dev,
                input_range(bool(graph.input_signed)) if graph.precision == "int" else i32,
            )
            trace = net(static=xs, steps=steps, record=record, count=True)
        else:
            xf = _input_tensor(frames, "frames", shape, graph.precision, dev, i32)
            trace = net(frames=xf, steps=steps, record=record, count=True)
    assert trace.counts is not None
    output_sum = trace.output_sum.cpu().numpy().astype(np.float64)
    output = output_sum / float(trace.steps)
    b = output.shape[0]
    prediction = (
        np.argmax(output, axis=1).astype(np.int64)
        if output.shape[1]
        else np.zeros(b, dtype=np.int64)
    )
    return {
        "output": output,
        "output_sum": output_sum,
        "prediction": prediction,
        "counts": {k: v.cpu().numpy().astype(np.uint64) for k, v in trace.counts.items()},
        "record": {k: v.cpu().numpy().astype(np.uint8) for k, v in trace.spikes.items()},
    }
