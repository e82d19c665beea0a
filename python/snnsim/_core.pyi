"""Typed stub of the native engine module (built from `rust/` by maturin).

This module is an implementation detail: the public API is `snnsim.run`, `snnsim.Stream` and
`snnsim.load`. Array arguments are C-contiguous numpy arrays; the engine reads them without
copying and releases the GIL while it works. Every failure is raised as a `ValueError` subclass
of `snnsim.errors` (`ModelError` for a bad model file, `InputError` for a bad argument or event,
`LimitError` beyond the memory limit or the thread bound, `NumericError` for an int32 overflow or
a non-finite float32 value) with a message naming the node, field or argument; an unreadable
file is an `OSError`.
"""

from typing import Any, Literal, NotRequired, TypedDict

import numpy as np
import numpy.typing as npt

MAX_THREADS: int  # largest `threads` argument of a run

class Counts(TypedDict):
    spikes: npt.NDArray[np.uint64]  # [B, L, T]
    sops: npt.NDArray[np.uint64]  # [B, L, T]
    macs: npt.NDArray[np.uint64]  # [B, L, T]
    aux_ops: npt.NDArray[np.uint64]  # [B, L, T]
    state_updates: npt.NDArray[np.uint64]  # [B, L, T]

class RawResult(TypedDict):
    output: npt.NDArray[np.float64]  # [B, n_out], see docs/model-format.md §5
    output_sum: npt.NDArray[np.float64]  # [B, n_out], sum over steps (membrane for integrate)
    prediction: npt.NDArray[np.int64]  # [B]
    counts: Counts
    record: dict[str, npt.NDArray[np.uint8]]  # name -> [B, T, *node_shape] (torch layout)

class Model:
    """A network loaded from a snnsim safetensors file and compiled for the engine."""

    @staticmethod
    def load(path: str) -> Model: ...
    @staticmethod
    def from_bytes(data: bytes) -> Model: ...
    @property
    def precision(self) -> Literal["float32", "int"]: ...
    @property
    def input_shape(self) -> tuple[int, ...]: ...
    @property
    def input_kind(self) -> Literal["static", "events", "sequence"]: ...
    @property
    def input_scale(self) -> float | None: ...
    @property
    def input_signed(self) -> bool: ...  # int static input in [-128, 127] (True) or [0, 255]
    @property
    def node_names(self) -> list[str]: ...  # topological order; the L axis of counts
    @property
    def node_ops(self) -> list[str]: ...
    @property
    def node_shapes(self) -> list[tuple[int, ...]]: ...
    @property
    def output(self) -> str: ...
    def dense_macs(self) -> npt.NDArray[np.uint64]: ...  # [L]
    def run_static(
        self,
        x: npt.NDArray[np.float32] | npt.NDArray[np.int32],
        steps: int,
        record: list[str],
        threads: int | None = None,
    ) -> RawResult:
        """x: [B, *input_shape]; float32 for float precision, int32 for int: in [-128, 127],
        or in [0, 255] when `input_signed` is False."""
    def run_frames(
        self,
        frames: npt.NDArray[np.float32] | npt.NDArray[np.int32],
        record: list[str],
        threads: int | None = None,
    ) -> RawResult:
        """frames: [B, T, *input_shape] per-step input (event counts); T = frames.shape[1]."""
    def run_events(
        self,
        x: npt.NDArray[np.int64],
        y: npt.NDArray[np.int64],
        p: npt.NDArray[np.int64],
        t: npt.NDArray[np.int64],
        offsets: npt.NDArray[np.int64],
        steps: int,
        binning: Literal["time", "count", "window"],
        record: list[str],
        threads: int | None = None,
        dt_us: int | None = None,
    ) -> RawResult:
        """Events of sample b are [offsets[b], offsets[b+1]); p already mapped to {0, 1}.
        `binning="window"` takes `dt_us`: windows of dt_us microseconds from each sample's
        first event, events after `steps` windows dropped."""
    def new_stream(self) -> StreamState: ...

class StreamState:
    """Neuron state of one sample kept between calls (batch 1)."""

    @property
    def steps_done(self) -> int: ...
    def feed_frames(
        self, frames: npt.NDArray[np.float32] | npt.NDArray[np.int32], record: list[str]
    ) -> RawResult:
        """frames: [T, *input_shape]; result covers these T steps only (B = 1); `output` and
        `prediction` cover all steps fed so far."""
    def feed_events(
        self,
        x: npt.NDArray[np.int64],
        y: npt.NDArray[np.int64],
        p: npt.NDArray[np.int64],
        t: npt.NDArray[np.int64],
        origin_us: int,
        dt_us: int,
        steps: int,
        record: list[str],
    ) -> RawResult:
        """Advance `steps` windows of `dt_us` starting at origin_us + steps_done*dt_us;
        every event must fall inside them."""

def validate_file(data: bytes) -> dict[str, Any]:
    """Validate the bytes of a model file (container, graph JSON, tensors) without compiling
    it; returns precision, input_shape, input_kind, input_scale, input_signed, node_names,
    node_ops, node_shapes (topological order) and output. The one validator of model files."""

def memory_limit() -> int:
    """The engine's memory limit in bytes (see `snnsim.limits`)."""

def set_memory_limit(nbytes: int | str | None) -> None:
    """Set the memory limit: bytes (int >= 1 or a string like "16G"), or None for the
    default (`SNNSIM_MEMORY_LIMIT` or min(8 GiB, half the process's memory))."""

def bin_events(
    x: npt.NDArray[np.int64],
    y: npt.NDArray[np.int64],
    p: npt.NDArray[np.int64],
    t: npt.NDArray[np.int64],
    offsets: npt.NDArray[np.int64],
    shape: tuple[int, int, int],
    steps: int,
    binning: Literal["time", "count"],
) -> npt.NDArray[np.int32]:
    """Dense frames [B, steps, C, H, W] of event counts (for tests and inspection)."""

class DsrLaw(TypedDict):
    """The `law` argument of `dsr_forward`: `leak` and `gain` for "lif" only."""

    kind: Literal["if", "lif"]
    theta: float
    fire: float
    value: float  # what one spike carries to the next layer
    leak: NotRequired[float]
    gain: NotRequired[float]

class DsrOptions(TypedDict, total=False):
    """The `options` argument of `dsr_forward` (every key optional; None = absent)."""

    current_weights: npt.NDArray[np.float32] | None
    membrane: npt.NDArray[np.float32] | None
    accumulate: float | None
    pool: tuple[int, int, int, int, bool] | None

def dsr_forward(
    x: npt.NDArray[np.float32],
    out: npt.NDArray[np.float32],
    mean_current: npt.NDArray[np.float32],
    mean_out: npt.NDArray[np.float32],
    steps: int,
    static_input: bool,
    law: DsrLaw,
    options: DsrOptions | None = None,
) -> int:
    """Fused forward of one DSR neuron layer for training (flat 1-D float32 arrays in one memory
    order): reads the currents `x` (`steps*n` time-major, or `n` when `static_input`), writes
    the value each spike carries (`law["value"]`) to `out` (`steps*n`), the mean input current
    to `mean_current` and the time mean of `out` to `mean_out` (`n` each); returns the spike
    count. `law`: the neuron (`kind`) and its constants. `options`: `current_weights` (`steps`
    values) weight the mean current (default: uniform). Time-chunked runs: `membrane` (`n`) is
    read at the start and written back at the end, and `accumulate=scale` adds to the means
    (`mean_current += sum_t w_t x_t`, weights required; `mean_out += scale * sum_t out_t`)
    instead of writing them. `pool=(k, C, H, W, channels_last)`: `out` receives the k x k
    average pool (stride k) of each step's outputs (`steps*n/k^2` values), summed row by row
    and divided by k*k as torch's avg_pool2d. A key outside these is an error."""

def dsr_rate_backward(
    grad: npt.NDArray[np.float32],
    mean_current: npt.NDArray[np.float32],
    grad_in: npt.NDArray[np.float32],
    upper: float,
    strict: bool,
    tau: float = 1.0,
) -> float:
    """Fused rate-form backward of one DSR neuron layer (flat 1-D float32 arrays of equal length
    in one memory order): writes `grad_in = grad * 1[0 <= mean_current <= upper]` (`strict`:
    open bounds, and divided by `tau`: the LIF form) and returns the sum of `grad` where
    `mean_current > upper` (the threshold gradient before its scale, summed in float64)."""

def simd_level() -> Literal["portable", "avx2", "avx512"]:
    """The instruction set the engine's kernels run with."""

def set_simd_level(
    level: Literal["portable", "avx2", "avx512"] | None = None,
) -> Literal["portable", "avx2", "avx512"]:
    """Caps the kernels' instruction set at `level` (None: the best the CPU supports) and returns
    the level now in effect. Results never depend on it (every level computes the same values
    in the same order); tests run the parity suite at every level."""
