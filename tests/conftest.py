"""Shared pytest configuration: hypothesis profiles.

``ci`` (set by scripts/test.sh) bounds the number of examples and derandomises the run so CI is
deterministic; ``dev`` is the default for local runs; ``thorough`` is for long local soaks.
Failing examples are printed with their seed (``print_blob``).
"""

import os

import pytest
from hypothesis import HealthCheck, settings

_common = dict(
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("ci", max_examples=40, derandomize=True, **_common)
settings.register_profile("dev", max_examples=60, **_common)
settings.register_profile("thorough", max_examples=2000, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small tensors: one intra-op torch thread is faster (and kinder to a shared CPU).
    Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture()
def restore_level():
    """For tests that pick a SIMD level: back to the detected level afterwards."""
    from snnsim import _core

    yield
    _core.set_simd_level(None)
