"""Side-by-side inference benchmark: snnsim against SpikingJelly, snnTorch, Norse, Sinabs and
plain torch loops, on the same networks, weights, thresholds and inputs.

    python benches/inference.py                      # everything -> benches/results/inference.json
    python benches/inference.py --quick              # smoke run (3 runs, 1 repetition)
    python benches/inference.py --workloads B --batches 1 --engines snnsim_float32 sinabs
    python benches/inference.py --readme             # print the README tables from the JSON
    python benches/inference.py --readme-write README.md   # put them between the README's markers

Workloads (``benches/inference_nets.py``): A MLP 784-800-800-10 (T=20, static MNIST input),
B event CNN on 2x34x34 (T=10), C PreAct-ResNet-18 at 3x32x32 (T=5, static), D VGG-11 on
2x48x48 events (T=10), E 700-256-256-20 on 700-channel events (T=100). IF neurons with
subtractive reset (snnsim's ``dsr_if``, fire level = theta), thresholds calibrated for ~10 %
firing per layer, dyadic weights so that float32 is exact in every engine.

Per (workload, batch, threads): every engine is built from the same description and, before
any timing, its spikes at every IF layer must equal the reference (plain torch evaluation with
an exactness bound, ``inference_nets.evaluate``); a mismatch aborts that row with a message.
Timing: ``--warmup`` calls, then ``--repeats`` repetitions interleaved across engines (engine
order rotated each time); each repetition is the median of at least ``--runs`` timed calls (more
for fast calls, to fill ``--min-time`` seconds); the row is the median over repetitions. One
call is one whole inference of the batch as a user runs it: state reset, all T steps, output
spike counts; peers under ``torch.no_grad()``, snnsim through ``snnsim.run``. Peak memory:
a fresh subprocess per (workload, engine, batch) at 1 thread.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import math
import os
import pickle
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
warnings.filterwarnings("ignore")  # peers warn on import (deprecated torch APIs)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from inference_engines import (  # noqa: E402
    ENGINES,
    LIBRARY,
    Engine,
    Unsupported,
    engine_class,
    make_engine,
    spike_mismatch,
)
from inference_nets import (  # noqa: E402
    BIG_BATCH,
    WORKLOADS,
    Network,
    Trace,
    calibrate,
    evaluate,
    make_input,
    make_network,
)

RESULTS = HERE / "results" / "inference.json"
CALIB_BATCH = {"A": 16, "B": 16, "C": 4, "D": 4, "E": 8}
SWEEP_LEVELS = (0.025, 0.05, 0.10, 0.20)
MARK_BEGIN, MARK_END = "<!-- inference-table:begin -->", "<!-- inference-table:end -->"
INPUT_SEED = 0
MEMORY_METHOD = (
    "fresh subprocess per (workload, engine, batch) at 1 thread: network and input built, the "
    "engine's library modules imported (rss_after_imports_mib), then the peak-RSS mark is reset "
    "(/proc/self/clear_refs) and the engine is built and run 3 times; peak_rss_mib is VmHWM "
    "after that (absolute, includes the baseline), peak_rss_delta_mib = peak - RSS before "
    "building the engine (it undercounts memory the allocator reuses from freed blocks)"
)


# ---------------------------------------------------------------------- machine and load
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit() -> str:
    try:
        rev = subprocess.run(
            ["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(HERE), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev + ("-dirty" if dirty else "")


def _simd_flags() -> list[str]:
    wanted = ("sse4_2", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_tile")
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                return [f for f in wanted if f in have]
    except OSError:
        pass
    return []


def machine_facts() -> dict[str, Any]:
    """CPU, cores, platform and torch's default thread count (call before changing it)."""
    return {
        "cpu_model": _cpu_model(),
        "simd_flags": _simd_flags(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch_default_threads": torch.get_num_threads(),
    }


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for dist in ("torch", "numpy", "snnsim", "spikingjelly", "snntorch", "norse", "sinabs"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    import snnsim

    out["snnsim"] = f"{snnsim.__version__} ({_git_commit()})"
    return out


def _proc_cpu_ticks() -> dict[int, tuple[str, int]]:
    ticks: dict[int, tuple[str, int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            raw = (d / "stat").read_text()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        ticks[int(d.name)] = (comm, int(fields[11]) + int(fields[12]))
    return ticks


def machine_idle(start: dict[str, Any], end: dict[str, Any]) -> bool:
    """Whether the run had the machine to itself: a load average below a quarter of the cores
    before it started, and no other process using 5 % of a core or more at the start or at the
    end. (The load average at the end counts this benchmark's own threads, so it is recorded but
    not judged.)"""
    ncpu = os.cpu_count() or 1
    quiet_start = bool(start) and start["loadavg"][0] <= 0.25 * ncpu
    others = [p for s in (start, end) if s for p in s.get("busy_processes", [])]
    return quiet_start and not others


def load_snapshot(interval: float = 1.0) -> dict[str, Any]:
    """Load average and the processes that used CPU during ``interval`` seconds (percent of one
    core), this benchmark's own process excluded."""
    snap: dict[str, Any] = {"loadavg": list(os.getloadavg())}
    if not Path("/proc/self/stat").exists():
        return snap
    hz = os.sysconf("SC_CLK_TCK")
    a = _proc_cpu_ticks()
    time.sleep(interval)
    b = _proc_cpu_ticks()
    busy: list[dict[str, Any]] = []
    for pid, (comm, t1) in b.items():
        if pid == os.getpid() or pid not in a:
            continue
        pct = 100.0 * (t1 - a[pid][1]) / hz / interval
        if pct >= 5.0:
            busy.append({"pid": pid, "command": comm, "cpu_percent": round(pct, 1)})
    snap["busy_processes"] = sorted(busy, key=lambda p: -float(p["cpu_percent"]))[:10]
    return snap


# ---------------------------------------------------------------------- timing
def timed_calls(engine: Engine, xin: Any, runs: int, min_time: float, est: float) -> list[float]:
    """Seconds per call of ``runs`` calls (more when calls are short, to fill ``min_time``)."""
    n = runs
    if est > 0 and min_time > 0:
        n = max(runs, min(1000, math.ceil(min_time / est)))
    times = []
    gc.collect()
    gc.disable()
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            engine.run(xin)
            times.append(time.perf_counter() - t0)
    finally:
        gc.enable()
    return times


@dataclass
class Candidate:
    """An engine that passed its spike check for one (workload, batch, threads)."""

    name: str
    engine: Engine
    xin: Any
    est: float = 0.0
    reps: list[float] = field(default_factory=list)
    runs: list[int] = field(default_factory=list)


def time_interleaved(cands: list[Candidate], threads: int, args: argparse.Namespace) -> None:
    """Warm up every engine, then ``args.repeats`` repetitions interleaved across engines; each
    repetition appends the median seconds per call to ``Candidate.reps``."""
    torch.set_num_threads(threads)
    for c in cands:
        c.engine.set_threads(threads)
        for _ in range(max(1, args.warmup)):
            t0 = time.perf_counter()
            c.engine.run(c.xin)
            c.est = time.perf_counter() - t0
    for r in range(args.repeats):
        k = r % len(cands)
        for c in cands[k:] + cands[:k]:
            c.engine.set_threads(threads)
            times = timed_calls(c.engine, c.xin, args.runs, args.min_time, c.est)
            c.reps.append(statistics.median(times))
            c.runs.append(len(times))


# ---------------------------------------------------------------------- one workload
def _row(workload: str, batch: int, threads: int, name: str, **kw: Any) -> dict[str, Any]:
    cls = engine_class(name)
    row: dict[str, Any] = {
        "workload": workload,
        "batch": batch,
        "threads": threads,
        "engine": name,
        "library": LIBRARY[name],
        "peer": cls.peer,
        "neuron_law": "IF, reset by subtraction" if cls.law == "subtract" else "IF, reset to zero",
        "status": "ok",
    }
    row.update(kw)
    return row


def _activity(trace: Trace, x: np.ndarray, net: Network) -> dict[str, Any]:
    out: dict[str, Any] = {
        "sops_per_sample": trace.sops_per_sample,
        "macs_per_sample": trace.macs_per_sample,
        "firing_rates": {k: round(v, 5) for k, v in trace.rates().items()},
    }
    if net.input_kind == "events":
        out["input_rate"] = round(float(x.mean()), 5)
    return out


def check_engine(engine: Engine, x: np.ndarray, refs: dict[str, Trace]) -> tuple[Any, str | None]:
    """Prepare the input and compare every IF layer's spikes with the reference of the engine's
    neuron law (and snnsim's exact SOP count with the reference's): (input, None) or
    (input, message). The recorded call follows a plain call, so a state that survives the
    reset between inferences shows up as a mismatch."""
    xin = engine.prepare(x)
    engine.run(xin)
    ref = refs[engine.law]
    msg = spike_mismatch(ref.spikes, engine.record(xin), engine.name)
    if msg is None and not engine.peer:
        got = getattr(engine, "last_sops_per_sample", float("nan"))
        if got != ref.sops_per_sample:
            msg = f"{engine.name}: SOPs per sample {got} != reference {ref.sops_per_sample}"
    return xin, msg


def build_engines(
    names: list[str], net: Network, batch: int
) -> tuple[dict[str, Engine], dict[str, tuple[str, str]]]:
    """Engines that could be built, and (status, message) for those that could not."""
    built: dict[str, Engine] = {}
    failed: dict[str, tuple[str, str]] = {}
    for name in names:
        try:
            built[name] = make_engine(name, net, batch)
        except Unsupported as exc:
            failed[name] = ("unsupported", str(exc))
        except ImportError as exc:
            failed[name] = ("unavailable", f"{LIBRARY[name]} is not installed: {exc}")
        except Exception as exc:  # a peer's failure is a row, not a crash
            failed[name] = ("error", f"{type(exc).__name__}: {exc}")
    return built, failed


def run_config(
    workload: str,
    net: Network,
    batch: int,
    names: list[str],
    args: argparse.Namespace,
    log: Any,
) -> list[dict[str, Any]]:
    """All rows of one workload and batch, for every thread count."""
    x = make_input(net, batch, INPUT_SEED)
    laws = {engine_class(n).law for n in names} | {"subtract"}
    refs = {law: evaluate(net, x, law=law) for law in sorted(laws)}  # type: ignore[arg-type]
    built, failed = build_engines(names, net, batch)
    rows: list[dict[str, Any]] = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        load1 = os.getloadavg()[0]
        cands: list[Candidate] = []
        for name in names:
            act = _activity(refs[engine_class(name).law], x, net)
            if name in failed:
                status, why = failed[name]
                rows.append(_row(workload, batch, threads, name, status=status, message=why, **act))
                log(f"  {workload} b={batch} t={threads} {name}: {status}: {why}")
                continue
            eng = built[name]
            eng.set_threads(threads)
            status = "mismatch"
            try:
                xin, msg = check_engine(eng, x, refs)
            except Exception as exc:  # a peer's failure is a row, not a crash
                xin, msg, status = None, f"{name}: {type(exc).__name__}: {exc}", "error"
            if msg is not None:
                rows.append(_row(workload, batch, threads, name, status=status, message=msg, **act))
                log(f"  {workload} b={batch} t={threads} {name}: NOT TIMED: {msg}")
                continue
            cands.append(Candidate(name, eng, xin))
        if args.check_only:
            for c in cands:
                act = _activity(refs[c.engine.law], x, net)
                checked = sorted(refs[c.engine.law].spikes)
                rows.append(_row(workload, batch, threads, c.name, spikes_checked=checked, **act))
                log(f"  {workload} b={batch} t={threads} {c.name:16s} spikes equal (not timed)")
            continue
        if cands:
            time_interleaved(cands, threads, args)
        for c in cands:
            act = _activity(refs[c.engine.law], x, net)
            ms = statistics.median(c.reps) / batch * 1e3
            rows.append(
                _row(
                    workload,
                    batch,
                    threads,
                    c.name,
                    ms_per_sample=ms,
                    ms_per_sample_reps=[r / batch * 1e3 for r in c.reps],
                    runs_per_rep=c.runs,
                    sops_per_s=act["sops_per_sample"] / (ms * 1e-3),
                    spikes_checked=sorted(refs[c.engine.law].spikes),
                    load_avg_1m=load1,
                    **act,
                )
            )
            log(f"  {workload} b={batch} t={threads} {c.name:16s} {ms:10.4f} ms/sample")
    add_ratios(rows)
    return rows


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """``ratio_vs_fastest_peer``: the fastest checked peer's ms per sample (same workload, batch
    and threads) over this row's; ``fastest_peer`` names it."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["workload"], r["batch"], r["threads"]), []).append(r)
    for group in groups.values():
        timed = [r for r in group if r["status"] == "ok" and "ms_per_sample" in r]
        peers = [r for r in timed if r["peer"]]
        if not peers:
            continue
        best = min(peers, key=lambda r: r["ms_per_sample"])
        for r in timed:
            r["fastest_peer"] = best["engine"]
            r["ratio_vs_fastest_peer"] = best["ms_per_sample"] / r["ms_per_sample"]


# ---------------------------------------------------------------------- memory
def memory_probe(spec: dict[str, Any]) -> dict[str, Any]:
    """Run in a fresh interpreter: peak RSS of building engine ``spec["engine"]`` for the
    pickled network and running it 3 times at batch ``spec["batch"]`` on 1 thread."""

    def status() -> dict[str, int]:
        out = {}
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(("VmRSS", "VmHWM")):
                k, v = line.split(":")
                out[k] = int(v.split()[0]) * 1024
        return out

    torch.set_num_threads(1)
    with open(spec["net"], "rb") as f:
        net = pickle.load(f)
    x = make_input(net, spec["batch"], INPUT_SEED)
    for module in engine_class(spec["engine"]).modules:
        importlib.import_module(module)
    after_imports = status()
    try:
        Path("/proc/self/clear_refs").write_text("5")
        reset = True
    except OSError:
        reset = False
    base = status()["VmRSS"]
    eng = make_engine(spec["engine"], net, spec["batch"])
    eng.set_threads(1)
    xin = eng.prepare(x)
    for _ in range(3):
        eng.run(xin)
    peak = status()["VmHWM"]
    mib = 1024.0 * 1024.0
    return {
        "peak_rss_mib": round(peak / mib, 1),
        "rss_before_engine_mib": round(base / mib, 1),
        "peak_rss_delta_mib": round((peak - base) / mib, 1) if reset else None,
        "rss_after_imports_mib": round(after_imports["VmRSS"] / mib, 1),
        "peak_reset": reset,
    }


def measure_memory(net_path: Path, engine: str, batch: int) -> dict[str, Any]:
    spec = json.dumps({"net": str(net_path), "engine": engine, "batch": batch})
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--memory-probe", spec],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        return {"memory_error": tail[0]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def attach_memory(
    rows: list[dict[str, Any]], net_paths: dict[str, Path], batches: set[int], log: Any
) -> None:
    done: dict[tuple[str, str, int], dict[str, Any]] = {}
    for r in rows:
        key = (r["workload"], r["engine"], r["batch"])
        if r["status"] != "ok" or r["batch"] not in batches:
            continue
        if key not in done:
            done[key] = measure_memory(net_paths[r["workload"]], r["engine"], r["batch"])
            done[key]["memory_threads"] = 1
            log(f"  memory {key}: {done[key]}")
        r.update(done[key])


# ---------------------------------------------------------------------- sweep
def _sweep_point(kind: str, level: float) -> tuple[float, float]:
    """(input rate, hidden target) of a sweep point."""
    if kind == "input":
        return level, 0.10
    if kind == "hidden":
        return 0.05, level
    return level, level


def run_sweep(
    main_rows: list[dict[str, Any]], args: argparse.Namespace, log: Any
) -> dict[str, Any]:
    """Time per sample on B against input and hidden firing, for snnsim and the fastest peer."""
    threads = args.threads[0]
    points: list[dict[str, Any]] = []
    for batch in args.sweep_batches:
        peers = _fastest_peers(main_rows, batch, threads)
        names = [n for n in ("snnsim_float32", "snnsim_int8") if n in args.engines] + peers
        for kind in ("input", "hidden", "both"):
            for level in args.sweep_levels:
                rate_in, target = _sweep_point(kind, level)
                net = make_network("B", tiny=args.tiny, input_rate=rate_in)
                calibrate(net, batch=CALIB_BATCH["B"], target=target)
                rows = run_config("B", net, batch, names, _one_thread(args, threads), log)
                for r in rows:
                    r.update(sweep=kind, level=level, input_target=rate_in, hidden_target=target)
                points += rows
    return {
        "workload": "B",
        "threads": threads,
        "levels": list(args.sweep_levels),
        "kinds": {
            "input": "input firing (ones per frame) = level; hidden thresholds for 10 %",
            "hidden": "input 5 % ones per frame; every IF layer's threshold for firing = level",
            "both": "input and every IF layer at level",
        },
        "peers": "the fastest checked peer on B at the same batch and threads in this run "
        "(both plain torch loops when B was not measured)",
        "points": points,
        "halving": halving_summary(points),
    }


def _fastest_peers(rows: list[dict[str, Any]], batch: int, threads: int) -> list[str]:
    ok = [
        r
        for r in rows
        if r["workload"] == "B"
        and r["batch"] == batch
        and r["threads"] == threads
        and r["peer"]
        and r["status"] == "ok"
    ]
    if not ok:
        return ["torch_step", "torch_multistep"]
    return [min(ok, key=lambda r: r["ms_per_sample"])["engine"]]


def _one_thread(args: argparse.Namespace, threads: int) -> argparse.Namespace:
    ns = argparse.Namespace(**vars(args))
    ns.threads = [threads]
    return ns


def halving_summary(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For every sweep kind, batch, engine and pair of levels (l, l/2): how much the time per
    sample falls when firing halves (``1 - t(l/2) / t(l)``)."""
    t: dict[tuple[Any, ...], float] = {}
    for p in points:
        if p["status"] == "ok":
            t[(p["sweep"], p["batch"], p["engine"], p["level"])] = p["ms_per_sample"]
    out = []
    for (kind, batch, engine, level), ms in sorted(t.items()):
        half = (kind, batch, engine, level / 2)
        if half in t:
            out.append(
                {
                    "sweep": kind,
                    "batch": batch,
                    "engine": engine,
                    "from_level": level,
                    "to_level": level / 2,
                    "time_fall": 1.0 - t[half] / ms,
                }
            )
    return out


# ---------------------------------------------------------------------- targets
BATCH1_TARGET = {"A": 10.0, "B": 10.0, "C": 5.0, "D": 5.0}  # x the fastest peer at batch 1
BIG_TARGET = 4.0  # x the fastest peer at batch 32/64, every workload
THREADS_TARGET = 1.6  # 1 -> 2 threads speed-up at batch 1 on B, C, D
HALVING_TARGET = 0.40  # fall of the time per sample when firing halves


def targets_summary(
    rows: list[dict[str, Any]], sweep: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """snnsim's rows against the speed targets: ratio to the fastest peer, 1 -> 2 thread
    speed-up, and the fall of the time per sample when firing halves."""
    ok = [r for r in rows if not r["peer"] and r["status"] == "ok" and "ms_per_sample" in r]
    return _ratio_targets(ok) + _thread_targets(ok) + _halving_targets(sweep)


def _ratio_targets(ok: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in ok:
        goal = BATCH1_TARGET.get(r["workload"]) if r["batch"] == 1 else BIG_TARGET
        if goal is not None and "ratio_vs_fastest_peer" in r:
            what = f">= {goal:g}x the fastest peer"
            out.append(_target(r, what, r["ratio_vs_fastest_peer"], goal))
    return out


def _thread_targets(ok: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by = {(r["workload"], r["engine"], r["batch"], r["threads"]): r for r in ok}
    out = []
    for (w, e, b, th), r in sorted(by.items()):
        two = by.get((w, e, b, 2))
        if b == 1 and th == 1 and w in ("B", "C", "D") and two is not None:
            speedup = r["ms_per_sample"] / two["ms_per_sample"]
            what = f">= {THREADS_TARGET:g}x from 1 to 2 threads"
            out.append(_target({**r, "threads": "1->2"}, what, speedup, THREADS_TARGET))
    return out


def _halving_targets(sweep: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not sweep:
        return []
    out = []
    for h in sweep["halving"]:
        if h["engine"].startswith("snnsim"):
            row = {"workload": "B", "engine": h["engine"], "batch": h["batch"]}
            what = (
                f"time falls >= {HALVING_TARGET:.0%} when {h['sweep']} firing halves "
                f"({h['from_level']:.1%} -> {h['to_level']:.1%})"
            )
            row["threads"] = sweep["threads"]
            out.append(_target(row, what, h["time_fall"], HALVING_TARGET))
    return out


def _target(r: dict[str, Any], what: str, value: float, goal: float) -> dict[str, Any]:
    return {
        "target": what,
        "workload": r["workload"],
        "engine": r["engine"],
        "batch": r["batch"],
        "threads": r["threads"],
        "measured": value,
        "met": value >= goal,
    }


def _targets_table(targets: list[dict[str, Any]]) -> list[str]:
    if not targets:
        return []
    out = ["", "Targets (issue 10) for snnsim:", ""]
    out.append("| target | workload | engine | batch | threads | measured | met |")
    out.append("|---|---|---|---|---|---|---|")
    for t in targets:
        v = t["measured"]
        val = f"{v:.0%}" if "falls" in t["target"] else _ratio(v)
        met = "yes" if t["met"] else "no"
        out.append(
            f"| {t['target']} | {t['workload']} | {t['engine']} | {t['batch']} | "
            f"{t['threads']} | {val} | {met} |"
        )
    return out


# ---------------------------------------------------------------------- README tables
def _cell(rows: dict[str, dict[str, Any]], name: str) -> str:
    r = rows.get(name)
    if r is None:
        return "–"
    if r["status"] != "ok":
        return {"unsupported": "n/s", "unavailable": "n/i"}.get(r["status"], r["status"])
    if "ms_per_sample" not in r:
        return "checked"
    ms = r["ms_per_sample"]
    txt = f"{ms:.0f}" if ms >= 100 else f"{ms:.3g}"
    if not r["peer"] and "ratio_vs_fastest_peer" in r:
        txt += f" ({_ratio(r['ratio_vs_fastest_peer'])})"
    return txt


def _ratio(v: float) -> str:
    return f"{v:.0f}x" if v >= 100 else f"{v:.3g}x"


def render_tables(doc: dict[str, Any]) -> str:
    """Markdown: the main table (ms per sample, snnsim's ratio to the fastest peer in the same
    row), the workload list and the firing sweep, from a results document."""
    lines: list[str] = []
    if doc.get("preliminary"):
        avg = [doc["load"][k].get("loadavg", [float("nan")])[0] for k in ("start", "end")]
        lines.append(
            f"**PRELIMINARY** ({doc.get('preliminary_reason', '')}; load average at start "
            f"{avg[0]:.1f}, at end {avg[1]:.1f})."
        )
        lines.append("")
    engines = [e for e in ENGINES if any(r["engine"] == e for r in doc["rows"])]
    lines.append("| workload | batch | threads | " + " | ".join(engines) + " |")
    lines.append("|---|---|---|" + "---|" * len(engines))
    groups: dict[tuple[Any, ...], dict[str, dict[str, Any]]] = {}
    for r in doc["rows"]:
        groups.setdefault((r["workload"], r["batch"], r["threads"]), {})[r["engine"]] = r
    for (w, b, th), rows in sorted(groups.items()):
        cells = " | ".join(_cell(rows, e) for e in engines)
        lines.append(f"| {w} | {b} | {th} | {cells} |")
    lines.append("")
    lines.append(
        "ms per sample, median over repetitions; snnsim cells: (fastest peer's time / snnsim's) "
        "in the same row; n/s: not supported; n/i: not installed; mismatch: spikes differ from "
        "the reference, not timed; checked: spikes equal, not timed (--check-only). Norse "
        "runs IF with reset to zero (it has no subtractive IF)."
    )
    lines.append("")
    for w, info in doc["workloads"].items():
        lines.append(f"- {w}: {info['description']}")
    lines += _sweep_table(doc.get("sweep"))
    lines += _targets_table(doc.get("targets", []))
    return "\n".join(lines) + "\n"


def _sweep_table(sweep: dict[str, Any] | None) -> list[str]:
    if not sweep or not sweep.get("points"):
        return []
    out = ["", f"Firing sweep on B ({sweep['threads']} thread(s)), ms per sample:", ""]
    engines = sorted({p["engine"] for p in sweep["points"]}, key=ENGINES.index)
    out.append("| sweep | batch | level | " + " | ".join(engines) + " |")
    out.append("|---|---|---|" + "---|" * len(engines))
    groups: dict[tuple[Any, ...], dict[str, dict[str, Any]]] = {}
    for p in sweep["points"]:
        groups.setdefault((p["sweep"], p["batch"], p["level"]), {})[p["engine"]] = p
    for (kind, b, level), rows in sorted(groups.items()):
        cells = " | ".join(_cell(rows, e) for e in engines)
        out.append(f"| {kind} | {b} | {level:.1%} | {cells} |")
    return out


def write_readme(path: Path, table: str) -> None:
    text = path.read_text()
    if MARK_BEGIN not in text or MARK_END not in text:
        raise SystemExit(f"{path}: markers {MARK_BEGIN} / {MARK_END} not found")
    head, rest = text.split(MARK_BEGIN, 1)
    _, tail = rest.split(MARK_END, 1)
    path.write_text(head + MARK_BEGIN + "\n" + table + MARK_END + tail)


# ---------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 3 runs, 1 repetition")
    ap.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=WORKLOADS)
    ap.add_argument(
        "--batches",
        nargs="+",
        default=["1", "big"],
        help="batch sizes; 'big' is 64 for A and 32 otherwise (default: 1 big)",
    )
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    ap.add_argument("--repeats", type=int, default=None, help="interleaved repetitions (3)")
    ap.add_argument("--runs", type=int, default=None, help="timed calls per repetition (>= 10)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed calls per engine (2)")
    ap.add_argument(
        "--min-time", type=float, default=None, help="seconds of timed calls per repetition (0.3)"
    )
    ap.add_argument(
        "--tiny", action="store_true", help="reduced networks of the same structure (tests)"
    )
    ap.add_argument(
        "--check-only",
        action="store_true",
        help="only check every engine's spikes against the reference: no timing, memory, sweep",
    )
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-RSS subprocesses")
    ap.add_argument("--no-sweep", action="store_true", help="skip the firing sweep on B")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--readme", action="store_true", help="print the README tables and exit")
    ap.add_argument("--readme-write", type=Path, help="write the tables into this README")
    ap.add_argument("--memory-probe", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    quick = args.quick
    defaults = {
        "repeats": 1 if quick else 3,
        "runs": 3 if quick else 10,
        "warmup": 1 if quick else 2,
    }
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.min_time is None:
        args.min_time = 0.0 if quick else 0.3
    for b in args.batches:
        if b != "big" and not (b.isdigit() and int(b) > 0):
            ap.error(f"--batches: expected positive integers or 'big', got {b!r}")
    if min(args.threads) < 1:
        ap.error("--threads must be >= 1")
    if not quick and args.runs < 10:
        ap.error("--runs must be >= 10 outside --quick (the median of at least 10 timed runs)")
    args.sweep_levels = (0.05, 0.10) if quick else SWEEP_LEVELS
    return args


def _batches(spec: list[str], workload: str) -> list[int]:
    return sorted({BIG_BATCH[workload] if b == "big" else int(b) for b in spec})


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.memory_probe:
        print(json.dumps(memory_probe(json.loads(args.memory_probe))))
        return
    if args.readme or args.readme_write:
        doc = json.loads(args.out.read_text())
        table = render_tables(doc)
        if args.readme_write:
            write_readme(args.readme_write, table)
        else:
            print(table, end="")
        return
    run_benchmark(args, argv)


def run_benchmark(args: argparse.Namespace, argv: list[str] | None) -> None:
    """Measure everything ``args`` asks for and write the results document."""
    with tempfile.TemporaryDirectory(prefix="snnsim-inference-") as tmp:
        _run_benchmark(args, argv, Path(tmp))


def _run_benchmark(args: argparse.Namespace, argv: list[str] | None, tmp: Path) -> None:
    def log(msg: str) -> None:
        print(msg, flush=True)

    context = {  # taken before anything runs: the code, libraries and machine measured
        "started_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_facts(),
        "versions": versions(),
    }
    load_start = load_snapshot()
    rows: list[dict[str, Any]] = []
    workloads: dict[str, Any] = {}
    net_paths: dict[str, Path] = {}
    for w in args.workloads:
        t0 = time.perf_counter()
        net = make_network(w, tiny=args.tiny)
        calibrate(net, batch=CALIB_BATCH[w])
        net_paths[w] = tmp / f"{w}.pkl"
        net_paths[w].write_bytes(pickle.dumps(net))
        log(f"{w}: calibrated in {time.perf_counter() - t0:.1f} s")
        workloads[w] = {
            "description": net.description,
            "steps": net.steps,
            "input": net.input_note,
            "input_kind": net.input_kind,
            "target_firing": net.target_rate,
            "layers": net.describe(),
            "calibration_batch": CALIB_BATCH[w],
        }
        for b in _batches(args.batches, w):
            rows += run_config(w, net, b, list(args.engines), args, log)
            partial = assemble(args, argv, context, (load_start, {}), workloads, rows, None)
            write_doc(args.out, partial)  # a long run that is cut short keeps what it measured
    if not (args.no_memory or args.check_only):
        mem_batches = (
            {1} if args.quick else {b for w in args.workloads for b in _batches(args.batches, w)}
        )
        attach_memory(rows, net_paths, mem_batches, log)
    sweep = None
    if "B" in args.workloads and not (args.no_sweep or args.check_only):
        args.sweep_batches = [1] if args.quick else _batches(args.batches, "B")
        sweep = run_sweep(rows, args, log)
    load_end = load_snapshot()
    doc = assemble(args, argv, context, (load_start, load_end), workloads, rows, sweep)
    doc["complete"] = True
    write_doc(args.out, doc)
    log(f"wrote {args.out}")
    print(render_tables(doc), end="")


def write_doc(path: Path, doc: dict[str, Any]) -> None:
    """Write the results atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_suffix(".json.part")
    part.write_text(json.dumps(doc, indent=1) + "\n")
    os.replace(part, path)


def assemble(
    args: argparse.Namespace,
    argv: list[str] | None,
    context: dict[str, Any],
    load: tuple[dict[str, Any], dict[str, Any]],
    workloads: dict[str, Any],
    rows: list[dict[str, Any]],
    sweep: dict[str, Any] | None,
) -> dict[str, Any]:
    load_start, load_end = load
    flags = (
        ("--quick smoke run", args.quick),
        ("--tiny networks", args.tiny),
        ("--check-only: nothing timed", args.check_only),
        ("machine not idle", not machine_idle(load_start, load_end)),
        ("run not finished", not load_end),
    )
    reasons = [r for r, on in flags if on]
    cmd = sys.argv[1:] if argv is None else argv
    return {
        "benchmark": "inference, side by side",
        "preliminary": bool(reasons),
        "preliminary_reason": "; ".join(reasons),
        "complete": False,
        "command": "python benches/inference.py " + " ".join(cmd),
        "started_utc": context["started_utc"],
        "finished_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": context["machine"],
        "versions": context["versions"],
        "load": {"start": load_start, "end": load_end},
        "settings": {
            "quick": args.quick,
            "check_only": args.check_only,
            "tiny_networks": args.tiny,
            "repeats": args.repeats,
            "runs_min": args.runs,
            "min_time_s": args.min_time,
            "warmup": args.warmup,
            "threads": args.threads,
            "engines": list(args.engines),
            "timing": "per row: median over interleaved repetitions of the median of the "
            "timed calls; one call = one inference of the batch (state reset, all steps)",
            "memory": "not measured" if (args.no_memory or args.check_only) else MEMORY_METHOD,
            "ratio": "ratio_vs_fastest_peer = the fastest checked peer's ms per sample (same "
            "workload, batch and threads; Norse included although it runs reset to zero) / "
            "the row's",
            "reference": "plain torch evaluation, layer by layer over all steps, with the "
            "exactness bound of benches/inference_nets.py; every engine's spikes at every IF "
            "layer must equal it before timing",
        },
        "engines": {n: engine_class(n).note for n in args.engines},
        "workloads": workloads,
        "rows": rows,
        "sweep": sweep,
        "targets": targets_summary(rows, sweep),
    }


if __name__ == "__main__":
    main()
