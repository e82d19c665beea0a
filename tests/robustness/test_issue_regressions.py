"""Every input a hostile user found to abort, hang or mislead snnsim, kept as a named test.

Each test gives the input that used to fail and checks what happens now: a clear snnsim error
naming the argument or field (``LimitError`` for resource limits, ``InputError``,
``ModelError``, ``NumericError``), nothing allocated beyond the memory limit, nothing lost. The
inputs that used to abort the interpreter run in a child process (with a 6 GiB address-space
limit where the report used one), so that a regression fails the test instead of killing pytest.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import snnsim
from snnsim import (
    Graph,
    InputError,
    LimitError,
    ModelError,
    NumericError,
    Stream,
    model_file,
)
from snnsim.graph import Precision
from snnsim.limits import MAX_THREADS

ROOT = Path(__file__).parents[2]
EV_DTYPE = np.dtype([("x", "<u2"), ("y", "<u2"), ("p", "i1"), ("t", "<i8")])
GIB = 1 << 30


# ---------------------------------------------------------------- helpers
def mlp() -> Graph:
    """The static MLP of the report (input [8])."""
    rng = np.random.default_rng(0)
    g = Graph(input_shape=(8,))
    g.linear("fc1", "input", rng.normal(size=(16, 8)))
    g.dsr_if("sn1", "fc1", theta=1.0, fire=0.5)
    g.linear("fc2", "sn1", rng.normal(size=(4, 16)))
    g.integrate("out", "fc2")
    g.set_output("out")
    return g


def event_model(precision: Precision = "float32") -> Graph:
    rng = np.random.default_rng(1)
    g = Graph(input_shape=(2, 8, 8), precision=precision, input_kind="events")
    g.sumpool2d("pool", "input", 2)
    g.flatten("flat", "pool")
    if precision == "int":
        g.linear("fc", "flat", rng.integers(-3, 6, size=(4, 32)))
        g.dsr_if("out", "fc", theta=4, fire=2)
    else:
        g.linear("fc", "flat", rng.normal(0.3, 0.3, size=(4, 32)))
        g.dsr_if("out", "fc", theta=1.0, fire=0.5)
    g.set_output("out")
    return g


def events(ts: list[int], x: int = 1, y: int = 2) -> np.ndarray:
    ev = np.zeros(len(ts), EV_DTYPE)
    ev["t"], ev["x"], ev["y"], ev["p"] = ts, x, y, 1
    return ev


def run_isolated(body: str, address_space: int | None = 6 * GIB, timeout: float = 120) -> str:
    """Run ``body`` in a fresh interpreter (optionally under an address-space limit); fail
    unless it exits normally. Returns its stdout."""
    prelude = "import resource\n"
    if address_space is not None:
        prelude += f"resource.setrlimit(resource.RLIMIT_AS, ({address_space}, {address_space}))\n"
    code = prelude + textwrap.dedent(body)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "python"), str(ROOT / "tests" / "robustness")]
        + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    env.pop("SNNSIM_MEMORY_LIMIT", None)
    p = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env
    )
    assert p.returncode == 0, f"child exited with {p.returncode}:\n{p.stdout}\n{p.stderr[-3000:]}"
    return p.stdout


SetLimit = Callable[[int | str | None], None]


@pytest.fixture
def memory_limit() -> Iterator[SetLimit]:
    """Set a memory limit for one test and restore the default afterwards."""
    yield snnsim.set_memory_limit
    snnsim.set_memory_limit(None)


# ---------------------------------------------------------------- aborts (SIGABRT)
def test_abort_run_with_800_million_steps() -> None:
    out = run_isolated(
        """
        import numpy as np, snnsim
        from test_issue_regressions import mlp
        try:
            snnsim.run(mlp(), np.ones(8, np.float32), steps=800_000_000)
        except snnsim.LimitError as e:
            print("LimitError:", e)
        """,
        address_space=None,
    )
    assert "LimitError: resource limit for 'steps'" in out
    assert "T=800000000" in out and "memory limit" in out


def test_abort_stream_event_800_million_windows_later() -> None:
    out = run_isolated(
        """
        import snnsim
        from test_issue_regressions import event_model, events
        s = snnsim.Stream(event_model(), dt_us=1)
        s.feed(events([0]))
        try:
            s.feed(events([800_000_000]))
        except snnsim.LimitError as e:
            print("LimitError:", e)
        print("steps_done", s.steps_done)
        print("flushed", s.flush().steps)
        """,
        address_space=None,
    )
    assert "LimitError: resource limit for 'dt_us'" in out
    # the refused chunk changed nothing: the event held back at t=0 is still there
    assert "steps_done 0" in out and "flushed 1" in out


def test_abort_bin_events_of_a_megapixel_sensor() -> None:
    out = run_isolated(
        """
        import numpy as np, snnsim
        from snnsim import _core
        z = np.zeros(1, np.int64)
        try:
            _core.bin_events(z, z, z, z, np.array([0, 1]), (2, 1024, 1024), 4000, "time")
        except snnsim.LimitError as e:
            print("LimitError:", e)
        """,
        address_space=None,
    )
    assert "LimitError: resource limit for 'steps'" in out and "frames" in out


def padded_conv_file(path: Path) -> Path:
    """A file of a few hundred bytes: a 2x2 conv with padding 20000 on a 2x2 input."""
    g = Graph(input_shape=(1, 2, 2))
    g.conv2d("conv", "input", np.ones((1, 1, 2, 2)), padding=20000)
    g.integrate("out", "conv")
    g.set_output("out")
    snnsim.save(g, path)
    return path


def test_abort_conv_padding_20000_under_6_gib(tmp_path: Path) -> None:
    path = padded_conv_file(tmp_path / "pad.snn.safetensors")
    assert path.stat().st_size < 1024
    out = run_isolated(
        f"""
        import numpy as np, snnsim
        m = snnsim.load({str(path)!r})           # a valid file: it loads
        print("shape", m.node_shapes["conv"])
        try:
            snnsim.run(m, np.ones((1, 2, 2), np.float32), steps=1)
        except snnsim.LimitError as e:
            print("LimitError:", e)
        """
    )
    assert "shape (1, 40001, 40001)" in out
    assert "LimitError: resource limit for 'model'" in out and "largest node 'conv'" in out


def test_abort_steps_1e8_under_6_gib() -> None:
    out = run_isolated(
        """
        import numpy as np, snnsim
        from test_issue_regressions import mlp
        try:
            snnsim.run(mlp(), np.ones(8, np.float32), steps=10**8)
        except snnsim.LimitError as e:
            print("LimitError:", e)
        """
    )
    assert "LimitError: resource limit for 'steps'" in out and "T=100000000" in out


# ---------------------------------------------------------------- unbounded
def test_unbounded_dt_us_1_frames_are_not_allocated(memory_limit: SetLimit) -> None:
    """dt_us=1 on two events 10 s apart: 10^7 windows. No dense frames are built (the engine
    bins the windows); the run is bounded by the memory limit and named."""
    ev = events([0, 10_000_000])
    memory_limit(256 << 20)
    with pytest.raises(LimitError, match=r"'steps'.*steps = 10000001: the windows of dt_us = 1"):
        snnsim.run(event_model(), ev, dt_us=1)
    # the same windows, fewer of them: the result equals the frames it stands for
    res = snnsim.run(event_model(), ev, dt_us=1, steps=1000)
    assert res.steps == 1000 and res.counts.spikes.shape == (1, 4, 1000)
    # the reference executor checks its dense frames against the same limit
    with pytest.raises(LimitError, match="reference run"):
        snnsim.run(event_model(), ev, dt_us=1, mode="reference")


def chain(n: int) -> Graph:
    g = Graph(input_shape=(4,))
    prev = "input"
    for i in range(n // 2):
        prev = g.linear(f"fc{i}", prev, np.eye(4))
        prev = g.dsr_if(f"sn{i}", prev, theta=1.0, fire=0.5)
    g.set_output(prev)
    return g


def test_unbounded_load_of_a_4000_node_chain(tmp_path: Path) -> None:
    """Loading took 28.6 s (quadratic graph code); now linear."""
    path = tmp_path / "chain.snn.safetensors"
    snnsim.save(chain(4000), path)
    start = time.perf_counter()
    m = snnsim.load(path)
    elapsed = time.perf_counter() - start
    assert len(m.node_names) == 4000 and m.node_names[-1] == "sn1999"
    assert elapsed < 5.0, f"load took {elapsed:.1f} s"  # 0.5 s on a busy 2-core machine


def test_unbounded_threads_pools_are_reused() -> None:
    """40 distinct thread counts left 861 threads alive; now at most a few pools are kept."""
    m = snnsim.Model.from_graph(mlp())
    x = np.ones((48, 8), np.float32)
    want = snnsim.run(m, x, steps=2)
    for t in range(1, 41):
        np.testing.assert_array_equal(snnsim.run(m, x, steps=2, threads=t).output, want.output)
    time.sleep(0.5)  # dropped pools end their threads asynchronously
    n_threads = len(os.listdir("/proc/self/task"))
    # 4 pools of at most 40 threads, rayon's global pool, torch's and pytest's own threads
    assert n_threads < 4 * 40 + 64, n_threads


def test_unbounded_threads_100000_is_refused_at_once() -> None:
    start = time.perf_counter()
    with pytest.raises(InputError, match=f"threads must be between 1 and {MAX_THREADS}"):
        snnsim.run(mlp(), np.ones(8, np.float32), steps=2, threads=100_000)
    from snnsim import _core

    eng = snnsim.Model.from_graph(mlp()).engine
    with pytest.raises(InputError, match="'threads': must be between 1 and 256"):
        eng.run_static(np.ones((1, 8), np.float32), 2, [], 100_000)
    assert time.perf_counter() - start < 5.0
    assert _core.MAX_THREADS == MAX_THREADS


# ---------------------------------------------------------------- silent
def test_silent_int_weight_300_at_8_bits_is_refused() -> None:
    g = Graph(input_shape=(2,), precision="int", input_scale=0.1)
    with pytest.raises(ModelError, match=r"'fc'.*'weight' value 300 .*int8 range .*wrap"):
        g.linear("fc", "input", np.array([[300, 1]]))
    with pytest.raises(ModelError, match=r"'fc'.*'weight' value 8 .*int4"):
        g.linear("fc", "input", np.array([[8, 1]]), weight_bits=4)
    assert g.nodes == []


def test_silent_int_bias_2_pow_32_plus_7_is_refused() -> None:
    g = Graph(input_shape=(2,), precision="int", input_scale=0.1)
    with pytest.raises(ModelError, match=r"'fc'.*'bias' value 4294967303 .*int32 range"):
        g.linear("fc", "input", np.ones((1, 2), np.int8), bias=np.array([2**32 + 7]))
    with pytest.raises(ModelError, match=r"'sn'.*'theta' must hold whole numbers.*1\.5"):
        g.dsr_if("sn", "input", theta=1.5, fire=1)
    fg = Graph(input_shape=(2,))
    with pytest.raises(ModelError, match=r"'fc'.*'weight' value 1e\+39 .*float32 range"):
        fg.linear("fc", "input", np.array([[1e39, 0.0]]))


def test_silent_float32_overflow_is_an_error() -> None:
    g = Graph(input_shape=(2,))
    g.linear("fc", "input", np.full((2, 2), 1e30))
    g.dsr_if("sn", "fc", theta=1.0, fire=0.5)
    g.linear("fc2", "sn", np.ones((2, 2)))
    g.integrate("out", "fc2")
    g.set_output("out")
    x = np.full(2, 1e30, np.float32)
    with pytest.raises(NumericError, match=r"float32 overflow in node 'sn' \(dsr_if\).*membrane"):
        snnsim.run(g, x, steps=3)
    # a stream keeps its last good state after the error
    fg = event_model()
    fg.node("fc").tensors["weight"][:] = 3e38
    s = Stream(fg)
    s.feed_frames(np.zeros((1, 2, 8, 8), np.float32))
    with pytest.raises(NumericError):
        s.feed_frames(np.full((2, 2, 8, 8), 1e3, np.float32))
    assert s.steps_done == 1
    assert s.feed_frames(np.zeros((1, 2, 8, 8), np.float32)).steps == 1 and s.steps_done == 2


def test_silent_stream_fed_from_two_threads_loses_nothing() -> None:
    """Two threads feeding one Stream used to raise "Already mutably borrowed" after the
    Python buffer had advanced, losing those events."""
    model = snnsim.Model.from_graph(event_model("int"))
    rng = np.random.default_rng(3)
    n = 4000
    ev = np.zeros(n, EV_DTYPE)
    ev["t"] = np.sort(rng.integers(0, 200_000, n))
    ev["x"], ev["y"], ev["p"] = rng.integers(0, 8, n), rng.integers(0, 8, n), rng.integers(0, 2, n)
    chunks = np.array_split(ev, 200)
    s = Stream(model, dt_us=500)
    accepted: list[np.ndarray] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    it = iter(range(len(chunks)))

    def worker() -> None:
        while True:
            with lock:
                i = next(it, None)
            if i is None:
                return
            try:
                s.feed(chunks[i])
                with lock:
                    accepted.append(chunks[i])
            except InputError as e:  # a chunk overtaken by a later one: refused, not lost
                assert "chunks must continue in time" in str(e) or "already run" in str(e)
            except BaseException as e:  # anything else fails the test
                errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    s.flush()
    fed = np.concatenate(sorted(accepted, key=lambda c: (int(c["t"][0]), int(c["t"][-1]))))
    want = snnsim.run(model, fed, dt_us=500)
    got = s.result()
    assert got.steps == want.steps
    np.testing.assert_array_equal(got.counts.spikes, want.counts.spikes)
    np.testing.assert_array_equal(got.output, want.output)


def test_silent_stream_integer_overflow_in_feed_loses_nothing() -> None:
    g = event_model("int")
    g.node("fc").tensors["weight"] = np.full((4, 32), 30_000, np.int16)
    g.node("fc").attrs["weight_bits"] = 16
    model = snnsim.Model.from_graph(g)
    s = Stream(model, dt_us=100)
    calm = events([0, 50, 120])  # window 0 runs, the event at 120 is held back
    s.feed(calm)
    assert s.steps_done == 1
    burst = np.zeros(100_000, EV_DTYPE)  # 30000 x 100000 leaves the int32 range
    burst["t"] = 250
    with pytest.raises(NumericError, match="integer overflow in node"):
        s.feed(np.concatenate([burst, events([400])]))
    assert s.steps_done == 1  # unchanged: the held event at t=120 is still there
    s.flush()
    want = snnsim.run(model, calm, dt_us=100)
    np.testing.assert_array_equal(s.result().counts.spikes, want.counts.spikes)


def test_silent_random_bytes_aedat_is_not_an_empty_recording(tmp_path: Path) -> None:
    from snnsim.data import DataFormatError, read_aedat

    p = tmp_path / "noise.aedat"
    p.write_bytes(np.random.default_rng(0).integers(0, 256, 8000, dtype=np.uint8).tobytes())
    with pytest.raises(DataFormatError, match="not a DVS128 recording"):
        read_aedat(p)


# ---------------------------------------------------------------- unclear or inconsistent
def raw_file(header: dict[str, Any], body: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + body


@pytest.mark.parametrize("dtype", ["BF16", "F8_E4M3", "F8_E5M2", "F16"])
def test_unclear_bf16_and_f8_tensors_name_the_dtype(tmp_path: Path, dtype: str) -> None:
    g = mlp()
    data = model_file.to_bytes(g)
    from snnsim.testing import join_model_file, split_model_file

    header, body = split_model_file(data)
    info = header["fc2.weight"]
    lo, hi = info["data_offsets"]
    size = {"BF16": 2, "F16": 2, "F8_E4M3": 1, "F8_E5M2": 1}[dtype]
    info["dtype"], info["shape"] = dtype, [(hi - lo) // size]
    path = tmp_path / "bf16.snn.safetensors"
    path.write_bytes(join_model_file(header, body))
    with pytest.raises(ModelError, match=rf"node 'fc2': tensor 'weight'.*dtype {dtype}"):
        snnsim.load(path)


def test_unclear_100000_deep_json_is_a_model_error(tmp_path: Path) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    meta = {"format": "snnsim", "snnsim.graph": deep}
    path = tmp_path / "deep.snn.safetensors"
    path.write_bytes(raw_file({"__metadata__": meta}, b""))
    with pytest.raises(ModelError, match="not valid JSON.*recursion limit"):
        snnsim.load(path)
    # deep nesting in the safetensors header itself
    path.write_bytes(raw_file({"__metadata__": meta, "x": json.loads("[" * 900 + "]" * 900)}, b""))
    with pytest.raises(ModelError, match="header is not valid JSON"):
        snnsim.load(path)


@pytest.mark.parametrize("steps", [2**63, 2**64 + 5, 10**30])
def test_unclear_steps_2_pow_63_names_steps(steps: int) -> None:
    with pytest.raises(InputError, match=f"steps = {steps} does not fit in int64"):
        snnsim.run(mlp(), np.ones(8, np.float32), steps=steps)
    eng = snnsim.Model.from_graph(mlp()).engine
    with pytest.raises(InputError, match="steps.*does not fit in int64"):
        eng.run_static(np.ones((1, 8), np.float32), steps, [])


def test_unclear_stream_at_int64_max() -> None:
    t_max = 2**63 - 1
    s = Stream(event_model(), dt_us=1000)
    s.feed(events([t_max]))  # origin at int64 max: one window
    assert s.flush().steps == 1
    s = Stream(event_model(), dt_us=1000)
    s.feed(events([0]))
    with pytest.raises(LimitError, match="'dt_us'") as info:
        s.feed(events([t_max]))
    assert "internal error" not in str(info.value)
    with pytest.raises(InputError, match="dt_us = 9223372036854775808 does not fit in int64"):
        Stream(event_model(), dt_us=2**63)


def test_unclear_nodes_fc_and_fc_sn_save_and_load(tmp_path: Path) -> None:
    g = Graph(input_shape=(3,))
    g.linear("fc", "input", np.eye(3))
    g.dsr_if("fc.sn", "fc", theta=[1.0, 2.0, 3.0], fire=0.5)
    g.set_output("fc.sn")
    path = tmp_path / "dots.snn.safetensors"
    snnsim.save(g, path)
    back = snnsim.load(path).graph
    assert set(back.node("fc").tensors) == {"weight"}
    np.testing.assert_array_equal(back.node("fc.sn").tensors["theta"], [1.0, 2.0, 3.0])
    res = snnsim.run(path, np.ones(3, np.float32), steps=4)
    assert res.output.shape == (1, 3)
