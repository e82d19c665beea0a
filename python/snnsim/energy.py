"""Energy estimates from exact operation counts (docs/semantics.md §5).

Energy = sum over layers of (count x cost per operation), in picojoules (pJ), reported per
sample (the mean over the batch of a run, i.e. per inference over all its time steps).

Compute model (cost per operation, from a :class:`CostTable`):

=================  ===========================  ==========================================
count              float32 precision            int precision
=================  ===========================  ==========================================
SOP (``sops``)     fp32 add                     int32 add (a weight added to an int32
                                                accumulator, for every weight width)
MAC (``macs``)     fp32 MAC (mult + add)        weights <= 8 bit: int8 mult + int32 add;
                                                16-bit weights: int32 mult + int32 add
aux op, pool/add   fp32 add                     int32 add
aux op, ``scale``  fp32 MAC                     int32 mult + int32 add (fixed-point multiply)
state update       ``dsr_if``/``integrate``: 1 add; ``dspike_lif``: 1 mult + 1 add;
                   ``dsr_lif``: 2 mult + 1 add (int: each fixed-point product is an int32
                   mult + int32 add for the rounding term)
spike              ``dsr_if``/``dsr_lif``: 1 add (the reset by subtraction); others free
=================  ===========================  ==========================================

Comparisons, shifts and control flow are not costed. ``compute_pj`` is the sum of all four
groups; ``synaptic_pj`` (SOPs + MACs only) is the number SNN papers usually quote.

Memory model (bytes, converted to energy at ``memory_64bit`` pJ per 64-bit access, i.e. per
8 bytes, reads and writes alike):

* weights: every SOP and every MAC reads one weight of the layer's width (4 bytes in float
  precision; ``weight_bits / 8`` in int precision: 0.5, 1 or 2 bytes);
* membrane state: every state update reads and writes one 4-byte value (float32 or int32).

Activations, accumulators, biases and spike traffic between layers are not counted.

The equivalent ANN (the same layers with every input element processed once, ``dense_macs``) is
costed on the same basis: compute = dense MACs at the MAC price, memory = one weight read per
dense MAC at the weight width. Two ANNs are reported: float32 (``ann_fp32``) and one quantised to
the SNN's weight width (``ann_same_width``: int8 weights -> int8 mult + int32 add per MAC, 1 byte
per weight read). ``dense_pj`` is the latter's compute energy.

Break-even firing rate: the SNN's energy splits into a part that scales with its spikes (SOPs,
their weight reads, resets, pool/add/scale ops on spikes) and a fixed part (MACs of the analog
first layer, neuron state updates and their memory). Scaling every layer's spikes by one factor,
the SNN costs less than the ANN below ``rate * (E_ann - E_fixed) / E_spikes`` (spikes per neuron
per step): :meth:`EnergyReport.break_even_rate`; 0 when the fixed part alone exceeds the ANN.
The full cost table and the counting rules: docs/energy.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .graph import NEURON_OPS, POOL_OPS, WEIGHTED_OPS, Graph
from .result import Counts, RunResult

PJ_TO_J = 1e-12


@dataclass(frozen=True)
class CostTable:
    """Energy per operation and per memory access, in picojoules (pJ).

    Defaults: Horowitz, "Computing's energy problem", ISSCC 2014, 45 nm; memory at the 32 KB SRAM
    figure (20 pJ per 64-bit access). :meth:`horowitz_45nm` picks another memory level.
    """

    fp32_add: float = 0.9
    fp32_mult: float = 3.7
    fp32_mac: float = 4.6
    int8_add: float = 0.03
    int8_mult: float = 0.2
    int32_add: float = 0.1
    int32_mult: float = 3.1
    memory_64bit: float = 20.0
    name: str = "Horowitz ISSCC 2014, 45 nm; memory: 32 KB SRAM"

    #: pJ per 64-bit access by memory level (Horowitz 2014; DRAM at the low end of 1.3-2.6 nJ).
    MEMORY_LEVELS: ClassVar[dict[str, float]] = {
        "sram_8kb": 10.0,
        "sram_32kb": 20.0,
        "sram_1mb": 100.0,
        "dram": 1300.0,
    }

    @classmethod
    def horowitz_45nm(cls, memory: str = "sram_32kb") -> "CostTable":
        """The default table with the memory cost of ``memory`` (one of :attr:`MEMORY_LEVELS`)."""
        if memory not in cls.MEMORY_LEVELS:
            raise ValueError(f"memory must be one of {sorted(cls.MEMORY_LEVELS)}, got {memory!r}")
        label = memory.replace("sram_", "").upper() + (" SRAM" if memory.startswith("sram") else "")
        return cls(
            memory_64bit=cls.MEMORY_LEVELS[memory],
            name=f"Horowitz ISSCC 2014, 45 nm; memory: {label}",
        )

    def __post_init__(self) -> None:
        for k in (
            "fp32_add",
            "fp32_mult",
            "fp32_mac",
            "int8_add",
            "int8_mult",
            "int32_add",
            "int32_mult",
            "memory_64bit",
        ):
            v = getattr(self, k)
            if not np.isfinite(v) or v < 0:
                raise ValueError(f"CostTable: field {k!r} must be a finite cost >= 0 pJ, got {v!r}")

    def format(self) -> str:
        """The table as text (pJ)."""
        rows = [f"cost table: {self.name}"]
        for k in (
            "fp32_add",
            "fp32_mult",
            "fp32_mac",
            "int8_add",
            "int8_mult",
            "int32_add",
            "int32_mult",
        ):
            rows.append(f"  {k:<13} {getattr(self, k):g} pJ")
        rows.append(f"  {'memory_64bit':<13} {self.memory_64bit:g} pJ per 64-bit access")
        return "\n".join(rows)


@dataclass(frozen=True)
class ModelInfo:
    """What the energy model needs to know about a network besides its counts: the precision
    and, per layer (topological order), the op and the weight width in bits (32 for float
    weights, ``None`` for layers without weights)."""

    precision: str
    layer_names: tuple[str, ...]
    layer_ops: tuple[str, ...]
    weight_bits: tuple[int | None, ...]
    #: per layer: its input is spikes (sparse, docs/model-format.md §3), so its aux ops scale
    #: with the firing rate (None: not known; then only SOPs and resets are taken to scale)
    sparse_input: tuple[bool, ...] | None = None

    @classmethod
    def from_graph(cls, graph: Graph) -> "ModelInfo":
        """What the energy model needs from ``graph``: node names and ops, value kinds, precision,
        weight widths and the per-node dense MACs of the equivalent ANN."""
        nodes = graph.topological_order()
        bits: list[int | None] = []
        for n in nodes:
            if n.op not in WEIGHTED_OPS:
                bits.append(None)
            elif graph.precision == "float32":
                bits.append(32)
            else:
                bits.append(int(n.attrs.get("weight_bits", 8)))
        kinds = _value_kinds(graph)
        return cls(
            precision=graph.precision,
            layer_names=tuple(n.name for n in nodes),
            layer_ops=tuple(n.op for n in nodes),
            weight_bits=tuple(bits),
            sparse_input=tuple(all(kinds[i] == "sparse" for i in n.inputs) for n in nodes),
        )


def _value_kinds(graph: Graph) -> dict[str, str]:
    """Value kind of every node (static, sparse or dense; docs/model-format.md §3)."""
    kinds = {"input": "static" if graph.input_kind == "static" else "sparse"}
    ops = {n.name: n.op for n in graph.nodes}
    for n in graph.topological_order():
        if n.op == "delay":  # spikes of a neuron one step later stay spikes
            kinds[n.name] = "sparse" if ops.get(n.inputs[0]) in NEURON_OPS else "dense"
            continue
        ins = [kinds[i] for i in n.inputs]
        no_shift = "shift" not in n.tensors or not np.any(n.tensors["shift"])
        if n.op in NEURON_OPS:
            kinds[n.name] = "sparse"
        elif n.op != "integrate" and all(k == "static" for k in ins):
            kinds[n.name] = "static"
        elif n.op in POOL_OPS + ("flatten", "add") and all(k == "sparse" for k in ins):
            kinds[n.name] = "sparse"
        elif n.op == "scale" and no_shift and ins == ["sparse"]:
            kinds[n.name] = "sparse"
        else:
            kinds[n.name] = "dense"
    return kinds


@dataclass(frozen=True, eq=False)
class EnergyReport:
    """Energy of one inference (mean over the batch of a run), in pJ unless stated.

    Per-layer arrays (float64 ``[L]``, ``layer_names`` order): ``sop_pj``, ``mac_pj``, ``aux_pj``,
    ``neuron_pj`` (compute), ``bytes_read``, ``bytes_written`` and ``memory_pj``. Per-sample
    counts: ``effective_acs`` (SOPs), ``effective_macs`` (MACs), ``dense_macs`` (equivalent ANN).
    """

    table: CostTable
    precision: str
    batch_size: int
    steps: int
    layer_names: tuple[str, ...]
    sop_pj: np.ndarray
    mac_pj: np.ndarray
    aux_pj: np.ndarray
    neuron_pj: np.ndarray
    bytes_read: np.ndarray
    bytes_written: np.ndarray
    memory_pj: np.ndarray
    effective_acs: float
    effective_macs: float
    dense_macs: float
    dense_pj: float
    #: mean firing rate over all neuron layers: spikes per neuron per step (0 to 1)
    firing_rate: float = 0.0
    #: the part of the compute / memory energy that scales with the spikes (pJ)
    spike_compute_pj: float = 0.0
    spike_memory_pj: float = 0.0
    #: the equivalent ANNs (float32, and quantised to the SNN's weight width): pJ per inference
    #: under ``compute_pj``, ``memory_pj``, ``total_pj``, and ``weight_bits``
    ann: dict[str, dict[str, float]] | None = None

    @property
    def synaptic_pj(self) -> float:
        """SOP + MAC energy (the usual SNN-paper figure), pJ."""
        return float(self.sop_pj.sum() + self.mac_pj.sum())

    @property
    def compute_pj(self) -> float:
        """All compute: SOPs, MACs, aux ops and neuron updates, pJ."""
        return float(
            self.sop_pj.sum() + self.mac_pj.sum() + self.aux_pj.sum() + self.neuron_pj.sum()
        )

    @property
    def memory_total_pj(self) -> float:
        """Memory energy of the SNN (weight reads and membrane traffic), pJ."""
        return float(self.memory_pj.sum())

    @property
    def total_pj(self) -> float:
        """Compute + memory, pJ."""
        return self.compute_pj + self.memory_total_pj

    @property
    def compute_j(self) -> float:
        """Compute energy in joules."""
        return self.compute_pj * PJ_TO_J

    @property
    def total_j(self) -> float:
        """Compute + memory energy in joules."""
        return self.total_pj * PJ_TO_J

    @property
    def activation_sparsity(self) -> float:
        """NeuroBench's ActivationSparsity: the fraction of neuron outputs that are not spikes."""
        return 1.0 - self.firing_rate

    def comparison(self) -> dict[str, dict[str, float]]:
        """The SNN and the equivalent ANNs on the same basis, pJ per inference: rows ``snn``,
        ``ann_fp32``, ``ann_same_width``; columns ``compute_pj``, ``memory_pj``, ``total_pj``
        (compute + memory) and, for the ANNs, the SNN's advantage ``ratio_compute`` and
        ``ratio_total`` (ANN energy / SNN energy: > 1 means the SNN uses less) and
        ``break_even_rate`` (compute + memory)."""
        snn = {
            "compute_pj": self.compute_pj,
            "memory_pj": self.memory_total_pj,
            "total_pj": self.total_pj,
            "weight_bits": float(self._snn_bits()),
        }
        out = {"snn": snn}
        for key, row in (self.ann or {}).items():
            r = dict(row)
            r["ratio_compute"] = _ratio(row["compute_pj"], self.compute_pj)
            r["ratio_total"] = _ratio(row["total_pj"], self.total_pj)
            r["break_even_rate"] = self.break_even_rate(key, memory=True)
            out[key] = r
        return out

    def _snn_bits(self) -> int:
        return (
            32
            if self.precision == "float32"
            else int((self.ann or {}).get("ann_same_width", {}).get("weight_bits", 8))
        )

    def break_even_rate(self, against: str = "ann_same_width", memory: bool = True) -> float:
        """The firing rate (spikes per neuron per step) below which the SNN uses less energy than
        the ANN ``against`` (``"ann_fp32"`` or ``"ann_same_width"``), counting memory
        (``memory=True``) or compute only, when every layer's spikes scale by one factor from this
        run's :attr:`firing_rate`. 0.0: the fixed part alone costs more than the ANN (the SNN
        never wins); ``inf``: the spikes cost nothing."""
        if not self.ann or against not in self.ann:
            raise KeyError(f"against must be one of {sorted(self.ann or {})}, got {against!r}")
        ann = self.ann[against]["total_pj" if memory else "compute_pj"]
        snn = self.total_pj if memory else self.compute_pj
        spike = self.spike_compute_pj + (self.spike_memory_pj if memory else 0.0)
        fixed = snn - spike
        if ann <= fixed:
            return 0.0
        if spike <= 0.0 or self.firing_rate <= 0.0:
            return float("inf")
        return self.firing_rate * (ann - fixed) / spike

    def neurobench(self) -> dict[str, float]:
        """Per-sample synaptic operations in NeuroBench's names: ``Effective_MACs``,
        ``Effective_ACs`` and ``Dense``."""
        return {
            "Effective_MACs": self.effective_macs,
            "Effective_ACs": self.effective_acs,
            "Dense": self.dense_macs,
        }

    def as_dict(self) -> dict[str, float]:
        """Scalar results (pJ, J, bytes, counts per sample), NeuroBench keys included."""
        return {
            "compute_pj": self.compute_pj,
            "synaptic_pj": self.synaptic_pj,
            "memory_pj": self.memory_total_pj,
            "total_pj": self.total_pj,
            "compute_j": self.compute_j,
            "total_j": self.total_j,
            "sop_pj": float(self.sop_pj.sum()),
            "mac_pj": float(self.mac_pj.sum()),
            "aux_pj": float(self.aux_pj.sum()),
            "neuron_pj": float(self.neuron_pj.sum()),
            "bytes_read": float(self.bytes_read.sum()),
            "bytes_written": float(self.bytes_written.sum()),
            "dense_pj": self.dense_pj,
            "firing_rate": self.firing_rate,
            "ActivationSparsity": self.activation_sparsity,
            **self.neurobench(),
        }

    def summary(self) -> str:
        """Text report: the SNN's energy (compute only, compute + memory) beside the equivalent
        ANNs on the same basis, the break-even firing rate, NeuroBench's keys and the table."""
        d = self.as_dict()
        lines = [
            (
                f"energy per inference ({self.precision} precision, {self.steps} steps, "
                f"mean over {self.batch_size} sample(s)), pJ:"
            ),
            f"  SNN compute only      {d['compute_pj']:12.6g}  ({d['compute_j']:.4g} J)",
            (
                f"    SOPs {d['sop_pj']:.6g}, MACs {d['mac_pj']:.6g}, aux {d['aux_pj']:.6g}, "
                f"neurons {d['neuron_pj']:.6g}"
            ),
            f"  SNN compute + memory  {d['total_pj']:12.6g}  ({d['total_j']:.4g} J)",
            (
                f"    memory {d['memory_pj']:.6g}: {d['bytes_read']:.6g} B read, "
                f"{d['bytes_written']:.6g} B written"
            ),
        ]
        cmp = self.comparison()
        for key, label in (("ann_fp32", "ANN float32"), ("ann_same_width", "ANN same width")):
            if key not in cmp:
                continue
            r = cmp[key]
            lines.append(
                f"  {label:<14} ({int(r['weight_bits'])}-bit weights): compute "
                f"{r['compute_pj']:.6g} (ANN/SNN {r['ratio_compute']:.3g}x), compute + memory "
                f"{r['total_pj']:.6g} (ANN/SNN {r['ratio_total']:.3g}x); the SNN wins below "
                f"a firing rate of "
                f"{_rate_text(r['break_even_rate'])} (now {self.firing_rate:.2%})"
            )
        lines.append(
            f"  NeuroBench: Effective_MACs {self.effective_macs:.6g}, Effective_ACs "
            f"{self.effective_acs:.6g}, Dense {self.dense_macs:.6g}, ActivationSparsity "
            f"{self.activation_sparsity:.4f}"
        )
        lines.append(self.table.format())
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def _ratio(a: float, b: float) -> float:
    return float("inf") if b == 0 else a / b


def _rate_text(rate: float) -> str:
    if rate == 0.0:
        return "0 (never: its fixed part alone costs more)"
    if not np.isfinite(rate):
        return "any rate"
    return f"{rate:.2%}"


def _model_info(model_info: Any) -> ModelInfo:
    if isinstance(model_info, ModelInfo):
        return model_info
    if isinstance(model_info, Graph):
        return ModelInfo.from_graph(model_info)
    graph = getattr(model_info, "graph", None)  # snnsim.api.Model
    if isinstance(graph, Graph):
        return ModelInfo.from_graph(graph)
    raise TypeError(
        "model_info must be a ModelInfo, a Graph or an snnsim Model, got "
        f"{type(model_info).__name__}"
    )


def _mac_cost(precision: str, bits: int | None, t: CostTable) -> float:
    if precision == "float32":
        return t.fp32_mac
    if bits is not None and bits > 8:
        return t.int32_mult + t.int32_add
    return t.int8_mult + t.int32_add


def _layer_costs(info: ModelInfo, t: CostTable) -> dict[str, np.ndarray]:
    """pJ per count for each layer: keys sops, macs, aux_ops, state_updates, spikes."""
    fl = info.precision == "float32"
    add = t.fp32_add if fl else t.int32_add
    mult = t.fp32_mult if fl else t.int32_mult
    # a fixed-point product fx(m, x, f) is an int32 mult plus the add of the rounding term
    prod = t.fp32_mult if fl else t.int32_mult + t.int32_add
    n = len(info.layer_ops)
    c = {k: np.zeros(n) for k in ("sops", "macs", "aux_ops", "state_updates", "spikes")}
    for i, (op, bits) in enumerate(zip(info.layer_ops, info.weight_bits, strict=True)):
        c["sops"][i] = add
        c["macs"][i] = _mac_cost(info.precision, bits, t)
        c["aux_ops"][i] = (mult + add) if op == "scale" else add
        if op in ("dsr_if", "integrate"):
            c["state_updates"][i] = add
        elif op == "dsr_lif":
            c["state_updates"][i] = 2 * prod + add
        elif op == "dspike_lif":
            c["state_updates"][i] = prod + add
        if op in ("dsr_if", "dsr_lif"):
            c["spikes"][i] = add
    return c


def energy(
    counts: Counts | RunResult, model_info: ModelInfo | Graph | Any, table: CostTable | None = None
) -> EnergyReport:
    """Estimate the energy of one inference from a run's counts (see the module docstring for
    the model). ``counts``: a :class:`~snnsim.result.Counts` or a :class:`~snnsim.result.RunResult`;
    ``model_info``: a :class:`ModelInfo`, a :class:`~snnsim.graph.Graph` or an ``snnsim.Model``;
    ``table``: costs in pJ (default :class:`CostTable`). Values are per sample (mean over the
    batch), in pJ (``*_pj``) and J (``*_j``)."""
    if isinstance(counts, RunResult):
        counts = counts.counts
    if not isinstance(counts, Counts):
        raise TypeError(f"counts must be a Counts or a RunResult, got {type(counts).__name__}")
    info = _model_info(model_info)
    t = table if table is not None else CostTable()
    if sorted(info.layer_names) != sorted(counts.layer_names):
        raise ValueError(
            f"energy: the counts' layers {list(counts.layer_names)} do not match the model's "
            f"layers {list(info.layer_names)}"
        )
    pos = {name: i for i, name in enumerate(info.layer_names)}
    perm = [pos[name] for name in counts.layer_names]
    info = ModelInfo(
        info.precision,
        counts.layer_names,
        tuple(info.layer_ops[i] for i in perm),
        tuple(info.weight_bits[i] for i in perm),
        None if info.sparse_input is None else tuple(info.sparse_input[i] for i in perm),
    )

    b = max(counts.batch_size, 1)
    per = {k: v.astype(np.float64) / b for k, v in counts.per_layer().items()}
    cost = _layer_costs(info, t)
    weight_bytes = np.array([0.0 if bits is None else bits / 8 for bits in info.weight_bits])
    bytes_read = (per["sops"] + per["macs"]) * weight_bytes + 4.0 * per["state_updates"]
    bytes_written = 4.0 * per["state_updates"]
    memory_pj = (bytes_read + bytes_written) / 8.0 * t.memory_64bit
    dense = per["dense_macs"]
    dense_cost = np.array([_mac_cost(info.precision, bits, t) for bits in info.weight_bits])
    # the part that scales with the spikes: SOPs and their weight reads, resets, aux ops on spikes
    sparse = np.array(info.sparse_input or [False] * len(info.layer_ops), dtype=bool)
    spike_compute = (
        per["sops"] * cost["sops"]
        + per["spikes"] * cost["spikes"]
        + np.where(sparse, per["aux_ops"] * cost["aux_ops"], 0.0)
    )
    spike_memory = per["sops"] * weight_bytes / 8.0 * t.memory_64bit
    neuron = np.array([op in NEURON_OPS for op in info.layer_ops], dtype=bool)
    neurons = float(per["state_updates"][neuron].sum())
    rate = float(per["spikes"][neuron].sum()) / neurons if neurons > 0 else 0.0
    return EnergyReport(
        table=t,
        precision=info.precision,
        batch_size=counts.batch_size,
        steps=counts.steps,
        layer_names=counts.layer_names,
        sop_pj=per["sops"] * cost["sops"],
        mac_pj=per["macs"] * cost["macs"],
        aux_pj=per["aux_ops"] * cost["aux_ops"],
        neuron_pj=per["state_updates"] * cost["state_updates"] + per["spikes"] * cost["spikes"],
        bytes_read=bytes_read,
        bytes_written=bytes_written,
        memory_pj=memory_pj,
        effective_acs=float(per["sops"].sum()),
        effective_macs=float(per["macs"].sum()),
        dense_macs=float(dense.sum()),
        dense_pj=float((dense * dense_cost).sum()),
        firing_rate=rate,
        spike_compute_pj=float(spike_compute.sum()),
        spike_memory_pj=float(spike_memory.sum()),
        ann=_ann_rows(info, dense, t),
    )


def _ann_rows(info: ModelInfo, dense: np.ndarray, t: CostTable) -> dict[str, dict[str, float]]:
    """The equivalent ANN in float32 and at the SNN's weight width (compute, memory, pJ)."""
    weighted = [b for b in info.weight_bits if b is not None]
    rows: dict[str, dict[str, float]] = {}
    for key, precision in (("ann_fp32", "float32"), ("ann_same_width", info.precision)):
        bits = [
            None if b is None else (32 if precision == "float32" else b) for b in info.weight_bits
        ]
        mac = np.array([_mac_cost(precision, b, t) for b in bits])
        wbytes = np.array([0.0 if b is None else b / 8 for b in bits])
        compute = float((dense * mac).sum())
        memory = float((dense * wbytes).sum() / 8.0 * t.memory_64bit)
        width = 32 if precision == "float32" else max(weighted, default=8)
        rows[key] = {
            "compute_pj": compute,
            "memory_pj": memory,
            "total_pj": compute + memory,
            "weight_bits": float(width),
        }
    return rows
