"""The compiled engine module ``snnsim._core`` (Rust, built by maturin), imported here only.

:func:`core` is for code that needs the engine (a clear ``ImportError`` when it is not built);
:func:`optional_core` is for code with a torch fallback (the DSR training forward), which takes
the native path only when the module is built and provides the function it calls.
"""

from __future__ import annotations

import functools
from types import ModuleType

__all__ = ["core", "optional_core"]

_BUILD_HINT = (
    "snnsim's native engine (snnsim._core) is not built or not importable; build it with "
    "`maturin develop --release` in the repository, or use mode='reference'"
)


def core() -> ModuleType:
    """The compiled module ``snnsim._core``; ``ImportError`` saying how to build it otherwise."""
    try:
        from . import _core
    except ImportError as exc:
        raise ImportError(_BUILD_HINT) from exc
    return _core


@functools.cache
def optional_core(feature: str) -> ModuleType | None:
    """The compiled module when it is importable and has the attribute ``feature`` (e.g.
    ``"dsr_forward"``), else ``None``. Cached: the import is tried once per feature."""
    try:
        mod = core()
    except ImportError:
        return None
    return mod if hasattr(mod, feature) else None
