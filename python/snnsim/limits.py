"""Resource limits: the engine's memory limit and the bound on ``threads``
(docs/robustness.md).

Every run, stream step, event binning and compiled network computes what it will allocate
before allocating it and raises :class:`~snnsim.errors.LimitError` (naming the argument and the
sizes) when that exceeds the memory limit. The limit defaults to the smaller of 8 GiB and half
the memory the process may use (physical memory, a cgroup limit, the address-space rlimit); the
environment variable ``SNNSIM_MEMORY_LIMIT`` (bytes, or with a ``K``/``M``/``G``/``T`` suffix,
powers of 1024) replaces the default, :func:`set_memory_limit` replaces both.

The torch reference executor (``mode="reference"``) and :func:`snnsim.events.bin_events` check
their large arrays against the same limit.
"""

from __future__ import annotations

from .errors import LimitError
from .native import core

#: Largest ``threads`` argument of a run (equals ``snnsim._core.MAX_THREADS``).
MAX_THREADS = 256
ENV_VAR = "SNNSIM_MEMORY_LIMIT"


def memory_limit() -> int:
    """The engine's memory limit in bytes."""
    return int(core().memory_limit())


def set_memory_limit(nbytes: int | str | None) -> None:
    """Set the memory limit: bytes (an int >= 1, or a string such as ``"16G"``: a number with an
    optional ``K``, ``M``, ``G`` or ``T`` suffix, powers of 1024), or None to go back to
    ``SNNSIM_MEMORY_LIMIT`` or the default. Raises :class:`~snnsim.errors.InputError` for
    anything else."""
    core().set_memory_limit(nbytes)


def fmt_bytes(n: int) -> str:
    """``1536`` -> ``"1.5 KiB"``."""
    if n < 1024:
        return f"{n} bytes"
    v = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        v /= 1024
        if v < 1024 or unit == "EiB":
            return f"{v:.1f} {unit}"
    return f"{n} bytes"  # pragma: no cover


def check_bytes(parts: dict[str, int], arg: str, action: str) -> None:
    """Raise :class:`LimitError` when the bytes of ``parts`` (what -> bytes) exceed the memory
    limit. Without the native module (no limit to read) nothing is checked."""
    try:
        limit = memory_limit()
    except ImportError:
        return
    total = sum(parts.values())
    if total <= limit:
        return
    biggest = sorted(parts.items(), key=lambda kv: -kv[1])[:3]
    detail = ", ".join(f"{k}: {fmt_bytes(v)}" for k, v in biggest)
    raise LimitError(
        f"resource limit for {arg!r}: {action} would allocate {fmt_bytes(total)} ({detail}), "
        f"more than the memory limit of {fmt_bytes(limit)}; lower {arg!r}, or raise the limit "
        f"with snnsim.set_memory_limit(bytes) or the environment variable {ENV_VAR}"
    )
