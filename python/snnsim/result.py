"""Results of a run: outputs, predictions, exact operation counts and recorded spikes.

Both executors (the Rust engine and the torch reference) return the same raw dictionary (see
``snnsim/_core.pyi``: ``RawResult``); :meth:`RunResult.from_raw` wraps it with the layer names so
that the two can be compared field by field. Counting rules: docs/model-format.md §4.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from .graph import NEURON_OPS

COUNT_FIELDS = ("spikes", "sops", "macs", "aux_ops", "state_updates")


@dataclass(frozen=True, eq=False)
class Counts:
    """Exact operation counts of a run, per sample, per layer, per time step.

    ``spikes``, ``sops``, ``macs``, ``aux_ops`` and ``state_updates`` are uint64 arrays
    ``[B, L, T]`` (batch, layer in ``layer_names`` order, time step); ``dense_macs`` (uint64
    ``[L]``) are the MACs of the equivalent ANN for one sample and one inference.
    """

    spikes: np.ndarray
    sops: np.ndarray
    macs: np.ndarray
    aux_ops: np.ndarray
    state_updates: np.ndarray
    layer_names: tuple[str, ...]
    layer_ops: tuple[str, ...]
    dense_macs: np.ndarray

    @property
    def batch_size(self) -> int:
        """Number of samples ``B``."""
        return int(self.spikes.shape[0])

    @property
    def steps(self) -> int:
        """Number of time steps ``T`` covered."""
        return int(self.spikes.shape[2])

    def get(self, name: str) -> np.ndarray:
        """The ``[B, L, T]`` array of one count field (one of :data:`COUNT_FIELDS`)."""
        if name not in COUNT_FIELDS:
            raise KeyError(f"unknown count field {name!r}; expected one of {COUNT_FIELDS}")
        arr: np.ndarray = getattr(self, name)
        return arr

    def per_layer(self) -> dict[str, np.ndarray]:
        """Totals per layer over the whole batch and all steps: count field -> uint64 ``[L]``,
        plus ``"dense_macs"`` for the batch (``B x`` the per-sample dense MACs)."""
        out = {f: self.get(f).sum(axis=(0, 2), dtype=np.uint64) for f in COUNT_FIELDS}
        out["dense_macs"] = self.dense_macs.astype(np.uint64) * np.uint64(self.batch_size)
        return out

    def total(self) -> dict[str, int]:
        """Grand totals over batch, layers and steps (Python ints), with ``"dense_macs"`` for the
        batch as in :meth:`per_layer`."""
        return {k: int(v.sum(dtype=np.uint64)) for k, v in self.per_layer().items()}

    @staticmethod
    def concat(parts: Sequence["Counts"]) -> "Counts":
        """Join counts of consecutive stretches of the same run along the time axis."""
        if not parts:
            raise ValueError("Counts.concat needs at least one part")
        first = parts[0]
        arrays = {f: np.concatenate([p.get(f) for p in parts], axis=2) for f in COUNT_FIELDS}
        return Counts(
            **arrays,
            layer_names=first.layer_names,
            layer_ops=first.layer_ops,
            dense_macs=first.dense_macs,
        )


@dataclass(frozen=True, eq=False)
class RunResult:
    """What a run returns.

    * ``output``: float64 ``[B, n_out]``: spike count over the ``steps`` steps divided by
      ``steps`` for a neuron output node, ``V[steps] / steps`` for an ``integrate`` node.
    * ``prediction``: int64 ``[B]``, ``argmax(output)`` (first index on ties).
    * ``counts``: :class:`Counts` (``[B, L, T]`` per field).
    * ``record``: node name -> uint8 ``[B, T, *node_shape]`` spikes of the recorded nodes.
    * ``steps``: number of time steps ``T`` this result covers.
    * ``output_sum``: float64 ``[B, n_out]``, the output before the division by the number of
      steps (spike counts, or the integrated membrane).
    * ``trained_steps``: the ``T`` the network was trained with, when its file records it;
      :attr:`steps_differ` tells whether this run used another number of steps.
    """

    output: np.ndarray
    prediction: np.ndarray
    counts: Counts
    record: dict[str, np.ndarray] = field(default_factory=dict)
    steps: int = 0
    output_sum: np.ndarray | None = None
    trained_steps: int | None = None

    @property
    def steps_differ(self) -> bool:
        """True when the network was trained with another number of steps than this run's."""
        return self.trained_steps is not None and self.trained_steps != self.steps

    def firing_rates(self) -> dict[str, float]:
        """Mean firing rate of every neuron layer: spikes per neuron per time step over the
        batch and all steps (0 to 1), in layer order."""
        c = self.counts
        spikes = c.spikes.sum(axis=(0, 2), dtype=np.uint64)
        updates = c.state_updates.sum(axis=(0, 2), dtype=np.uint64)
        return {
            name: float(spikes[i]) / float(updates[i])
            for i, (name, op) in enumerate(zip(c.layer_names, c.layer_ops, strict=True))
            if op in NEURON_OPS and updates[i] > 0
        }

    @property
    def spikes(self) -> np.ndarray:
        """Spike counts per layer and step: uint64 ``[B, L, T]`` (0 for non-neuron layers)."""
        return self.counts.spikes

    @property
    def batch_size(self) -> int:
        """Number of samples ``B``."""
        return int(self.output.shape[0])

    @property
    def layer_names(self) -> tuple[str, ...]:
        """Node names in count order (``[B, L, T]`` arrays index ``L`` this way)."""
        return self.counts.layer_names

    @classmethod
    def from_raw(
        cls,
        raw: Mapping[str, Any],
        layer_names: Sequence[str],
        layer_ops: Sequence[str],
        dense_macs: np.ndarray,
        raw_layer_names: Sequence[str] | None = None,
    ) -> "RunResult":
        """Wrap a raw result dictionary of an executor. ``dense_macs`` come from the same
        executor. ``raw_layer_names`` is the order of the L axis in ``raw`` and ``dense_macs``
        when it differs from ``layer_names`` (both are then permuted)."""
        c = raw["counts"]
        arrays = {f: np.asarray(c[f], dtype=np.uint64) for f in COUNT_FIELDS}
        dense = np.asarray(dense_macs, dtype=np.uint64)
        if raw_layer_names is not None and list(raw_layer_names) != list(layer_names):
            pos = {name: i for i, name in enumerate(raw_layer_names)}
            perm = [pos[name] for name in layer_names]
            arrays = {f: a[:, perm, :] for f, a in arrays.items()}
            dense = dense[perm]
        shape = arrays["spikes"].shape
        for f, a in arrays.items():
            if a.ndim != 3 or a.shape != shape or a.shape[1] != len(layer_names):
                raise ValueError(
                    f"raw result: counts[{f!r}] has shape {list(a.shape)}, expected "
                    f"[B, {len(layer_names)}, T] like counts['spikes'] {list(shape)}"
                )
        counts = Counts(
            **arrays, layer_names=tuple(layer_names), layer_ops=tuple(layer_ops), dense_macs=dense
        )
        out_sum = raw.get("output_sum")
        return cls(
            output=np.asarray(raw["output"], dtype=np.float64),
            prediction=np.asarray(raw["prediction"], dtype=np.int64),
            counts=counts,
            record={
                str(k): np.asarray(v, dtype=np.uint8) for k, v in raw.get("record", {}).items()
            },
            steps=int(shape[2]),
            output_sum=None if out_sum is None else np.asarray(out_sum, dtype=np.float64),
        )

    def summary(self) -> str:
        """A readable table: predictions, then per-layer totals over the batch and all steps."""
        c = self.counts
        pred = self.prediction.tolist()
        shown = pred if len(pred) <= 16 else pred[:16] + ["..."]
        note = (
            f" (the network was trained with T = {self.trained_steps})" if self.steps_differ else ""
        )
        lines = [
            f"RunResult: batch {self.batch_size}, {self.steps} steps{note}",
            f"prediction: {shown}",
            "counts (totals over the batch and all steps):",
        ]
        per = c.per_layer()
        head = ("layer", "op", "spikes", "SOPs", "MACs", "aux ops", "state upd.", "dense MACs")
        rows: list[tuple[str, ...]] = [head]
        for i, (name, op) in enumerate(zip(c.layer_names, c.layer_ops, strict=True)):
            rows.append((name, op, *(f"{int(per[k][i]):,}" for k in (*COUNT_FIELDS, "dense_macs"))))
        tot = c.total()
        rows.append(("total", "", *(f"{tot[k]:,}" for k in (*COUNT_FIELDS, "dense_macs"))))
        widths = [max(len(r[j]) for r in rows) for j in range(len(head))]
        for k, r in enumerate(rows):
            cells = [
                r[j].ljust(widths[j]) if j < 2 else r[j].rjust(widths[j]) for j in range(len(head))
            ]
            lines.append("  " + "  ".join(cells).rstrip())
            if k == 0 or k == len(rows) - 2:
                lines.append("  " + "  ".join("-" * w for w in widths))
        if self.record:
            lines.append(
                "recorded: " + ", ".join(f"{k} {list(v.shape)}" for k, v in self.record.items())
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()
