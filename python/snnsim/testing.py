"""Hypothesis strategies for random spiking networks and inputs.

Public so that users can property-test their own code against snnsim the same way snnsim tests
itself: ``networks()`` draws a random feed-forward :class:`~snnsim.graph.Graph` (Linear, Conv2d,
pools, Flatten, residual Add, fixed-point Scale, DSR-IF, DSR-LIF, Dspike-LIF, an integrating
(plain or leaky) or spiking output) in float32 or integer precision, together with a matching
input batch; ``event_recordings()`` draws event arrays; ``mutated_model_files()`` draws the
bytes of hostile model files (valid files changed at the byte, metadata, JSON or tensor level).

Structure (layer kinds, sizes, neuron types, precision, weight width) is drawn by hypothesis so
failures shrink to small networks; the bulk numbers (weights, inputs) come from a numpy
generator seeded by a drawn integer, so a failing example is reproduced from its printed seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from hypothesis import strategies as st

from .graph import NEURON_OPS, Graph

Precision = Literal["float32", "int"]

#: float32 precision: a spike may differ between two executors only where the membrane lies
#: within ``FLOAT_TOLERANCE * max(1, |fire|)`` of the fire level (summation order differs).
FLOAT_TOLERANCE = 1e-4


@dataclass
class NetworkCase:
    """A drawn network with its input: ``static`` [B, *input_shape] or ``frames``
    [B, T, *input_shape] (event counts or per-step tensors), and the number of ``steps``."""

    graph: Graph
    steps: int
    static: np.ndarray | None
    frames: np.ndarray | None
    seed: int

    @property
    def inputs(self) -> np.ndarray:
        if self.static is not None:
            return self.static
        assert self.frames is not None  # every case has static input or frames
        return self.frames


class _Builder:
    """Adds layers with parameters that keep firing rates in a useful range."""

    def __init__(
        self, draw: Any, graph: Graph, rng: np.random.Generator, weight_bits: int, tie_prone: bool
    ):
        self.draw, self.g, self.rng = draw, graph, rng
        self.bits = weight_bits
        self.tie_prone = tie_prone
        self.count = 0
        self.int = graph.precision == "int"

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def weights(self, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
        if not self.int:
            return (self.rng.standard_normal(shape) * (1.5 / np.sqrt(fan_in))).astype(np.float32)
        hi = {4: 7, 8: 127, 16: 32767}[self.bits]
        lo = -hi - 1
        if self.tie_prone:  # small integers make exact ties at the fire level frequent
            hi, lo = min(hi, 3), max(lo, -2)
        return self.rng.integers(lo, hi + 1, size=shape).astype(
            np.int16 if self.bits == 16 else np.int8
        )

    def bias(self, n: int) -> np.ndarray | None:
        if not self.draw(st.booleans()):
            return None
        if self.int:
            return self.rng.integers(-4, 5, size=n).astype(np.int32)
        return (self.rng.standard_normal(n) * 0.1).astype(np.float32)

    def current_scale(self, fan_in: int, in_mag: float) -> float:
        """Typical |current| into a neuron fed by a layer of this fan-in whose inputs have
        typical magnitude ``in_mag`` (int precision)."""
        hi = {4: 7, 8: 127, 16: 32767}[self.bits]
        if self.tie_prone:
            hi = 3
        return max(1.0, hi * np.sqrt(fan_in) * 0.5 * in_mag)

    def neuron(
        self,
        inp: str,
        channels: int,
        fan_in: int,
        op: str | None = None,
        in_mag: float = 1.0,
        name: str | None = None,
    ) -> str:
        op = op or self.draw(st.sampled_from(NEURON_OPS))
        name = name or self.name("sn")
        per_channel = self.draw(st.booleans())
        c = channels if per_channel else 1
        alpha = self.draw(st.sampled_from([0.3, 0.5, 1.0]))
        if not self.int:
            theta = self.rng.uniform(0.3, 1.5, size=c).astype(np.float32)
            fire = (alpha * theta).astype(np.float32)
            if op == "dsr_if":
                return self.g.dsr_if(name, inp, theta=theta, fire=fire)
            leak = self.rng.uniform(0.5, 1.0, size=c).astype(np.float32)
            if op == "dsr_lif":
                return self.g.dsr_lif(
                    name,
                    inp,
                    theta=theta,
                    fire=fire,
                    leak=leak,
                    gain=(1 - leak + 0.5).astype(np.float32),
                )
            return self.g.dspike_lif(name, inp, fire=fire, leak=leak)
        scale = self.current_scale(fan_in, in_mag)
        theta = self.rng.integers(1, int(max(2, 2 * scale)) + 1, size=c).astype(np.int32)
        fire = np.maximum(1, np.round(alpha * theta)).astype(np.int32)
        f = self.draw(st.integers(1, 16))
        leak_m = self.rng.integers(0, 2**f + 1, size=c).astype(np.int32)
        if op == "dsr_if":
            return self.g.dsr_if(name, inp, theta=theta, fire=fire)
        if op == "dsr_lif":
            gain_m = self.rng.integers(1, 2**f + 1, size=c).astype(np.int32)
            return self.g.dsr_lif(
                name, inp, theta=theta, fire=fire, leak_m=leak_m, gain_m=gain_m, f=f
            )
        return self.g.dspike_lif(name, inp, fire=fire, leak_m=leak_m, f=f)

    def integrate(self, inp: str, channels: int) -> str:
        """An output integrator, plain or leaky (per-channel or shared leak)."""
        name = self.name("out")
        if not self.draw(st.booleans()):
            return self.g.integrate(name, inp)
        c = channels if self.draw(st.booleans()) else 1
        if not self.int:
            return self.g.integrate(
                name, inp, leak=self.rng.uniform(0.5, 1.0, size=c).astype(np.float32)
            )
        f = self.draw(st.integers(1, 16))
        leak_m = self.rng.integers(0, 2**f + 1, size=c).astype(np.int32)
        return self.g.integrate(name, inp, leak_m=leak_m, f=f)


@st.composite
def networks(
    draw: Any,
    precision: Precision | None = None,
    input_kind: Literal["static", "events", "sequence"] | None = None,
    max_steps: int = 32,
    max_batch: int = 8,
    recurrent: bool | None = None,
) -> NetworkCase:
    """Draw a random network and an input batch (see the module docstring): 2-d, 1-d
    (``[C, L]`` through conv1d and 1-d pools) or flat inputs, static, event or sequence input
    (binary or graded per-step tensors), and, unless ``recurrent`` is False, recurrent blocks
    (a neuron fed back through a one-step delay and a linear layer)."""
    precision = precision or draw(st.sampled_from(["float32", "int"]))
    input_kind = input_kind or draw(st.sampled_from(["static", "events", "sequence"]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    shape = _draw_shape(draw, input_kind)
    rank = len(shape)
    spatial = rank == 3
    graded = input_kind == "sequence" and draw(st.booleans())
    bits = draw(st.sampled_from([4, 8, 16])) if precision == "int" else 8
    tie_prone = precision == "int" and draw(st.booleans())
    quantised = precision == "int" and (input_kind == "static" or graded)
    # an int static or graded input is signed 8-bit [-128, 127] or unsigned [0, 255]
    signed = not quantised or draw(st.booleans())
    g = Graph(
        input_shape=shape,
        precision=precision,
        input_kind=input_kind,
        input_scale=(1.0 / 64) if quantised else None,
        input_signed=signed,
    )
    b = _Builder(draw, g, rng, bits, tie_prone)

    x, cur = "input", shape
    # typical |input value| seen by the first weighted layer (int precision)
    in_mag = (
        1.0
        if (
            input_kind == "events"
            or precision == "float32"
            or not graded
            and input_kind != "static"
        )
        else (2.0 if tie_prone else 64.0) * (1.0 if signed else 2.0)
    )
    if rank == 2:
        x, cur, in_mag = _conv1d_stage(draw, b, x, cur, in_mag)
    if spatial:
        for _ in range(draw(st.integers(1, 2))):
            cin, hh, ww = cur
            cout = draw(st.integers(1, 4))
            k = draw(st.integers(1, min(3, hh, ww)))
            stride = draw(st.integers(1, 2))
            pad = draw(st.integers(0, k // 2))
            fan = cin * k * k
            x = g.conv2d(
                b.name("conv"),
                x,
                b.weights((cout, cin, k, k), fan),
                b.bias(cout),
                stride=stride,
                padding=pad,
                weight_bits=bits if precision == "int" else None,
            )
            cur = g.shapes()[x]
            x = b.neuron(x, cur[0], fan, in_mag=in_mag)
            in_mag = 1.0
            if draw(st.booleans()) and cur[1] >= 2 and cur[2] >= 2:
                if precision == "int" or draw(st.booleans()):
                    x = g.sumpool2d(b.name("pool"), x, 2)
                else:
                    x = g.avgpool2d(b.name("pool"), x, 2)
                cur = g.shapes()[x]
            if draw(st.booleans()):  # residual block: conv-neuron-conv + shortcut, then a neuron
                cc = cur[0]
                y = g.conv2d(
                    b.name("conv"),
                    x,
                    b.weights((cc, cc, 3, 3), 9 * cc),
                    None,
                    padding=1,
                    weight_bits=bits if precision == "int" else None,
                )
                y = b.neuron(y, cc, 9 * cc)
                y = g.conv2d(
                    b.name("conv"),
                    y,
                    b.weights((cc, cc, 1, 1), cc),
                    b.bias(cc),
                    weight_bits=bits if precision == "int" else None,
                )
                if draw(st.booleans()):  # fixed-point rescale of the residual stream
                    if precision == "int":
                        y = g.scale(
                            b.name("scale"),
                            y,
                            m=rng.integers(1, 2**8, size=cc).astype(np.int32),
                            f=draw(st.integers(1, 10)),
                        )
                    else:
                        y = g.scale(
                            b.name("scale"),
                            y,
                            scale=rng.uniform(0.5, 1.5, size=cc).astype(np.float32),
                        )
                x = g.add(b.name("add"), x, y)
                x = b.neuron(x, cc, 9 * cc)
        x = g.flatten(b.name("flat"), x)
        cur = g.shapes()[x]
    if recurrent is None:
        recurrent = draw(st.booleans())
    for _ in range(draw(st.integers(1 if recurrent else 0, 2))):
        fin, fout = cur[0], draw(st.integers(1, 24))
        x = g.linear(
            b.name("fc"),
            x,
            b.weights((fout, fin), fin),
            b.bias(fout),
            weight_bits=bits if precision == "int" else None,
        )
        if recurrent and draw(st.booleans()):
            x, in_mag = _recurrent_block(draw, b, x, fout, fin, in_mag), 1.0
        else:
            x = b.neuron(x, fout, fin, in_mag=in_mag)
        in_mag = 1.0
        cur = (fout,)
    fin, nout = cur[0], draw(st.integers(2, 10))
    x = g.linear(
        b.name("fc"),
        x,
        b.weights((nout, fin), fin),
        b.bias(nout),
        weight_bits=bits if precision == "int" else None,
    )
    if draw(st.booleans()):
        out = b.integrate(x, nout)
    else:
        out = b.neuron(x, nout, fin, in_mag=in_mag)
    g.set_output(out)
    g.validate()

    steps = draw(st.integers(1, max_steps))
    batch = draw(st.integers(1, max_batch))
    static, frames = _draw_inputs(draw, rng, g, (batch, steps), graded, tie_prone)
    return NetworkCase(graph=g, steps=steps, static=static, frames=frames, seed=seed)


def _draw_shape(draw: Any, input_kind: str) -> tuple[int, ...]:
    """An input shape ``[C, H, W]``, ``[C, L]`` or ``[F]`` (events: ``C`` in 1..2)."""
    rank = draw(st.sampled_from([1, 2, 3]))
    if rank == 1:
        return (draw(st.integers(1, 24)),)
    c = draw(st.integers(1, 2)) if input_kind == "events" else draw(st.integers(1, 3))
    if rank == 2:
        return (c, draw(st.integers(3, 24)))
    return (c, draw(st.integers(3, 8)), draw(st.integers(3, 8)))


def _draw_inputs(
    draw: Any,
    rng: np.random.Generator,
    g: Graph,
    batch_steps: tuple[int, int],
    graded: bool,
    tie_prone: bool,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """A static input ``[B, *shape]`` or per-step frames ``[B, T, *shape]`` for graph ``g``."""
    batch, steps = batch_steps
    shape = tuple(g.input_shape)
    if g.input_kind == "static":
        if g.precision == "int":
            if g.input_signed:
                lo, hi = (-3, 4) if tie_prone else (-128, 128)
            else:  # unsigned: up to 255, the largest static input integer
                lo, hi = (0, 7) if tie_prone else (0, 256)
            return rng.integers(lo, hi, size=(batch, *shape)).astype(np.int32), None
        return rng.uniform(-1.0, 1.0, size=(batch, *shape)).astype(np.float32), None
    if graded:  # per-step analog values (quantised with the input scale in int precision)
        # unsigned: [0, 4.5) at scale 1/64, so some values clip at 255
        lo_f, hi_f = (-1.0, 1.0) if g.input_signed else (0.0, 4.5)
        frames = rng.uniform(lo_f, hi_f, size=(batch, steps, *shape)).astype(np.float32)
        frames[rng.random(frames.shape) < 0.5] = 0.0
        return None, frames
    rate = draw(st.sampled_from([0.05, 0.2, 0.5]))
    top = 2 if g.input_kind == "events" else 1  # spike trains are binary
    counts = rng.binomial(top, rate, size=(batch, steps, *shape))
    return None, counts.astype(np.int32 if g.precision == "int" else np.float32)


def _conv1d_stage(
    draw: Any, b: _Builder, x: str, cur: tuple[int, ...], in_mag: float
) -> tuple[str, tuple[int, ...], float]:
    """conv1d -> neuron (-> 1-d pool) on a ``[C, L]`` value, then flatten."""
    g = b.g
    for _ in range(draw(st.integers(1, 2))):
        cin, length = cur
        cout = draw(st.integers(1, 4))
        k = draw(st.integers(1, min(5, length)))
        fan = cin * k
        x = g.conv1d(
            b.name("conv"),
            x,
            b.weights((cout, cin, k), fan),
            b.bias(cout),
            stride=draw(st.integers(1, 2)),
            padding=draw(st.integers(0, k // 2)),
            weight_bits=b.bits if b.int else None,
        )
        cur = g.shapes()[x]
        x = b.neuron(x, cur[0], fan, in_mag=in_mag)
        in_mag = 1.0
        if draw(st.booleans()) and cur[1] >= 2:
            if b.int or draw(st.booleans()):
                x = g.sumpool1d(b.name("pool"), x, 2)
            else:
                x = g.avgpool1d(b.name("pool"), x, 2)
            cur = g.shapes()[x]
    x = g.flatten(b.name("flat"), x)
    return x, g.shapes()[x], in_mag


def _recurrent_block(draw: Any, b: _Builder, x: str, n: int, fan_in: int, in_mag: float) -> str:
    """``sn = neuron(x + W_rec @ delay(sn))``: a recurrent layer of ``n`` neurons fed by ``x``."""
    g = b.g
    sn = b.name("sn")
    d = g.delay(b.name("delay"), sn, shape=(n,))
    r = g.linear(
        b.name("rec"),
        d,
        b.weights((n, n), n),
        b.bias(n) if draw(st.booleans()) else None,
        weight_bits=b.bits if b.int else None,
    )
    a = g.add(b.name("add"), x, r)
    return b.neuron(a, n, fan_in + n, in_mag=in_mag, name=sn)


@st.composite
def event_recordings(
    draw: Any, sensor: tuple[int, int, int] = (2, 8, 8), max_events: int = 200
) -> np.ndarray:
    """A tonic-style structured event array (fields x, y, p, t; t non-decreasing, microseconds)
    for a sensor of shape (C, H, W)."""
    c, h, w = sensor
    n = draw(st.integers(0, max_events))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, dtype=[("x", "<i2"), ("y", "<i2"), ("p", "<i1"), ("t", "<i8")])
    ev["x"] = rng.integers(0, w, n)
    ev["y"] = rng.integers(0, h, n)
    ev["p"] = rng.integers(0, 2, n) if c == 2 else 0
    ev["t"] = np.cumsum(rng.integers(0, draw(st.sampled_from([1, 10, 1000])) + 1, n)) + draw(
        st.integers(0, 10**6)
    )
    return ev


# ---------------------------------------------------------------------- hostile model files
#: Values a mutated graph JSON field may take: type confusions, range boundaries, names.
HOSTILE_JSON_VALUES: tuple[Any, ...] = (
    0,
    1,
    -1,
    2,
    3,
    7,
    31,
    32,
    2**30,
    2**30 + 1,
    2**31 - 1,
    2**31,
    2**63 - 1,
    -(2**63),
    1.0,
    0.5,
    -0.0,
    1e308,
    True,
    False,
    None,
    "",
    "x",
    "input",
    "fc.sn",
    "float32",
    "int",
    "static",
    "events",
    "dsr_if",
    "add",
    [],
    [1],
    [1, 1],
    [0, 0],
    [2**30 + 1, 1],
    {},
)

#: safetensors dtypes a tensor may be re-declared as (byte length kept where possible).
HOSTILE_DTYPES: tuple[tuple[str, int], ...] = (
    ("F64", 8),
    ("F32", 4),
    ("F16", 2),
    ("BF16", 2),
    ("F8_E4M3", 1),
    ("F8_E5M2", 1),
    ("I64", 8),
    ("I32", 4),
    ("I16", 2),
    ("I8", 1),
    ("U8", 1),
    ("U32", 4),
    ("BOOL", 1),
)


def split_model_file(data: bytes) -> tuple[dict[str, Any], bytes]:
    """The safetensors header (a dict, ``__metadata__`` included) and the data bytes of a
    well-formed file."""
    import json
    import struct

    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def join_model_file(header: dict[str, Any], body: bytes) -> bytes:
    """Inverse of :func:`split_model_file` (the header re-encoded, its length prefixed)."""
    import json
    import struct

    raw = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<Q", len(raw)) + raw + body


def _walk(draw: Any, node: Any) -> tuple[Any, Any]:
    """A random (container, key) inside a JSON document (a dict or list to edit in place)."""
    parent, key = None, None
    while isinstance(node, (dict, list)) and len(node) and (parent is None or draw(st.booleans())):
        keys = list(node.keys()) if isinstance(node, dict) else list(range(len(node)))
        parent, key = node, draw(st.sampled_from(keys))
        node = node[key]
    return parent, key


def _mutate_json(draw: Any, doc: Any) -> Any:
    """One edit of the graph JSON: a value replaced, removed, duplicated or nested deeply."""
    parent, key = _walk(draw, doc)
    if parent is None:
        return draw(st.sampled_from(HOSTILE_JSON_VALUES))
    action = draw(st.sampled_from(["replace", "delete", "duplicate", "nest"]))
    if action == "delete":
        del parent[key]
    elif action == "duplicate" and isinstance(parent, list):
        parent.insert(key, parent[key])
    elif action == "nest":
        depth = draw(st.sampled_from([2, 100, 130, 500, 900]))
        v: Any = parent[key]
        for _ in range(depth):
            v = [v]
        parent[key] = v
    else:
        parent[key] = draw(st.sampled_from(HOSTILE_JSON_VALUES))
    return doc


def _mutate_tensor(draw: Any, header: dict[str, Any], body: bytearray) -> None:
    """One edit of a tensor: its dtype, shape, offsets or name in the header, or an element's
    bytes in the data."""
    names = [k for k in header if k != "__metadata__"]
    if not names:
        header["ghost.weight"] = {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}
        return
    name = draw(st.sampled_from(sorted(names)))
    info = header[name]
    lo, hi = info["data_offsets"]
    action = draw(st.sampled_from(["dtype", "shape", "offsets", "rename", "bytes", "delete"]))
    if action == "dtype":
        dtype, size = draw(st.sampled_from(HOSTILE_DTYPES))
        info["dtype"] = dtype
        if (hi - lo) % size == 0:  # the same bytes read as another dtype
            n = (hi - lo) // size
            shape = info["shape"]
            info["shape"] = (
                shape[:-1] + [n // max(1, int(np.prod(shape[:-1])))]
                if (shape and n % max(1, int(np.prod(shape[:-1]))) == 0)
                else [n]
            )
    elif action == "shape":
        info["shape"] = draw(st.sampled_from([[], [0], [1], [hi - lo], [2, (hi - lo) // 2]]))
    elif action == "offsets":
        info["data_offsets"] = [lo, hi + draw(st.sampled_from([-4, -1, 1, 4]))]
    elif action == "rename":
        header[draw(st.sampled_from(["x", "input.weight", name + "x", "." + name]))] = header.pop(
            name
        )
    elif action == "delete":
        del header[name]
    elif hi > lo:
        i = draw(st.integers(lo, hi - 1))
        body[i] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0xFF, 0xC0]))


def _valid_training_meta(doc: dict[str, Any]) -> dict[str, Any]:
    """A valid ``"snnsim.meta"`` object for the graph JSON ``doc`` (every field used)."""
    shape = list(doc["input"]["shape"])
    channels = shape[0] if len(shape) == 3 else 1
    return {
        "version": 1,
        "T": 4,
        "preprocess": {
            "input_shape": [int(np.prod(shape))],
            "rescale": 0.5,
            "mean": [0.1] * channels,
            "std": [0.3],
            "flatten": True,
        },
        "modules": {doc["nodes"][0]["name"]: ["body.0"]},
        "source": {"family": "test"},
    }


@st.composite
def mutated_model_files(draw: Any, base: bytes | None = None) -> bytes:
    """The bytes of a model file, valid or not: a valid file (``base``, or a random network of
    :func:`networks` saved) changed at one level -- raw bytes (flips, truncation, garbage),
    the metadata, the training metadata (a valid ``"snnsim.meta"`` added, then maybe edited),
    the graph JSON (values from :data:`HOSTILE_JSON_VALUES`, deletions, deep nesting) or one
    tensor (dtypes from :data:`HOSTILE_DTYPES`, shapes, offsets, names, element bytes). Used to
    show that the Python package and the engine accept exactly the same files and that nothing
    but a clear error comes of the rest."""
    import json

    from .model_file import GRAPH_KEY, META_KEY, to_bytes

    if base is None:
        base = to_bytes(draw(networks(max_steps=2, max_batch=1)).graph)
    # the graph JSON and the tensors are where validation is deepest: drawn more often
    level = draw(
        st.sampled_from(
            ["json", "tensor", "metadata", "training metadata", "json", "tensor", "bytes", "none"]
        )
    )
    if level == "none":
        return base
    if level == "bytes":
        b = bytearray(base)
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(b) - 1))
            b[i] = draw(st.integers(0, 255))
        cut = draw(st.sampled_from([None, 0, 7, 8, len(b) // 2, len(b) - 1]))
        return bytes(b[:cut]) + draw(st.sampled_from([b"", b"\x00", b"{}", b"\xff" * 9]))
    header, body = split_model_file(base)
    meta = header.setdefault("__metadata__", {})
    if level == "metadata":
        key = draw(st.sampled_from(["format", GRAPH_KEY]))
        if draw(st.booleans()):
            meta.pop(key, None)
        else:
            meta[key] = draw(st.sampled_from(["", "pt", "snnsim", "{}", "[]", "1", "null"]))
    elif level == "training metadata":
        doc = json.loads(meta[GRAPH_KEY])
        train = _valid_training_meta(doc)
        if draw(st.booleans()):
            train = _mutate_json(draw, train)
        meta[META_KEY] = json.dumps(train)
    elif level == "json":
        meta[GRAPH_KEY] = json.dumps(_mutate_json(draw, json.loads(meta[GRAPH_KEY])))
    else:
        data = bytearray(body)
        _mutate_tensor(draw, header, data)
        body = bytes(data)
    return join_model_file(header, body)
