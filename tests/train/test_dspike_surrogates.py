"""Dspike surrogate (Li et al., NeurIPS 2021) and the rectangular / triangular baselines."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from snnsim.nn.surrogates import (
    DspikeSurrogate,
    RectSurrogate,
    TriangleSurrogate,
    dspike_grad,
    make_surrogate,
    rect_grad,
    triangle_grad,
)

temps = st.floats(0.05, 10.0)
widths = st.floats(0.1, 2.0)


def _dspike_primitive(x: torch.Tensor, b: float, w: float) -> torch.Tensor:
    # (tanh(b x) / tanh(b w) + 1) / 2 on [-w, w]: rises from 0 to 1 over the window.
    return (torch.tanh(b * x) / math.tanh(b * w) + 1.0) / 2.0


@given(b=temps, w=widths, u=st.lists(st.floats(-0.999, 0.999), min_size=1, max_size=16))
def test_dspike_formula_matches_autograd_of_its_primitive(
    b: float, w: float, u: list[float]
) -> None:
    x = (torch.tensor(u, dtype=torch.float64) * w).requires_grad_(True)
    (g,) = torch.autograd.grad(_dspike_primitive(x, b, w).sum(), x)
    want = b * (1 - torch.tanh(b * x.detach()) ** 2) / (2 * math.tanh(b * w))
    torch.testing.assert_close(dspike_grad(x.detach(), b, w), want)
    torch.testing.assert_close(dspike_grad(x.detach(), b, w), g)


@given(b=temps, w=widths, u=st.floats(-0.99, 0.99))
def test_dspike_formula_matches_finite_differences(b: float, w: float, u: float) -> None:
    x = torch.tensor([u * w], dtype=torch.float64)
    h = 1e-6 * w
    fd = (_dspike_primitive(x + h, b, w) - _dspike_primitive(x - h, b, w)) / (2 * h)
    torch.testing.assert_close(dspike_grad(x, b, w), fd, rtol=1e-5, atol=1e-6)


@given(b=temps, w=widths, x=st.lists(st.floats(-50, 50), min_size=1, max_size=32))
def test_dspike_gradient_is_zero_outside_the_window(b: float, w: float, x: list[float]) -> None:
    t = torch.tensor(x, dtype=torch.float64)
    g = dspike_grad(t, b, w)
    assert torch.all(g[t.abs() >= w] == 0)
    assert torch.all(g[t.abs() < w] > 0)
    # exactly at the edges: zero
    assert float(dspike_grad(torch.tensor([w, -w], dtype=torch.float64), b, w).abs().sum()) == 0.0


@pytest.mark.parametrize("b", [0.1, 1.0, 3.0, 10.0])
def test_dspike_integrates_to_one_and_sharpens_with_temperature(b: float) -> None:
    x = torch.linspace(-0.5, 0.5, 200001, dtype=torch.float64)
    g = dspike_grad(x, b, 0.5)
    assert abs(float(torch.trapezoid(g, x)) - 1.0) < 1e-4
    assert float(dspike_grad(torch.zeros(1, dtype=torch.float64), b, 0.5)) == pytest.approx(
        b / (2 * math.tanh(b * 0.5))
    )


def test_small_temperature_is_the_rectangle() -> None:
    x = torch.linspace(-1, 1, 1001, dtype=torch.float64)
    torch.testing.assert_close(dspike_grad(x, 1e-4, 0.5), rect_grad(x, 1.0), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(dspike_grad(x, 1e-2, 0.5), rect_grad(x, 1.0), rtol=1e-4, atol=1e-4)


@given(b=temps, x=st.lists(st.floats(-2, 2), min_size=1, max_size=32))
def test_surrogate_forward_is_strict_heaviside_and_backward_is_the_formula(
    b: float, x: list[float]
) -> None:
    sg = DspikeSurrogate(b=b, w=0.5)
    t = torch.tensor(x + [0.0], dtype=torch.float64, requires_grad=True)
    s = sg(t)
    assert torch.equal(s.detach(), (t.detach() > 0).double())
    assert float(s.detach()[-1]) == 0.0  # U == fire does not fire
    up = torch.linspace(0.5, 1.5, t.numel(), dtype=torch.float64)
    (g,) = torch.autograd.grad((s * up).sum(), t)
    torch.testing.assert_close(g, up * dspike_grad(t.detach(), b, 0.5))


def test_temperature_is_mutable_and_validated() -> None:
    sg = DspikeSurrogate(1.0)
    sg.b = 2.5
    assert sg.b == 2.5
    with pytest.raises(ValueError):
        sg.b = 0.0
    with pytest.raises(ValueError):
        DspikeSurrogate(1.0, w=0.0)


@given(a=st.floats(0.1, 3.0), x=st.lists(st.floats(-5, 5), min_size=1, max_size=32))
def test_rectangular_and_triangular_surrogates(a: float, x: list[float]) -> None:
    t = torch.tensor(x, dtype=torch.float64)
    r = rect_grad(t, a)
    assert torch.all(r[t.abs() < a / 2] == 1 / a)
    assert torch.all(r[t.abs() >= a / 2] == 0)
    tri = triangle_grad(t, a)
    torch.testing.assert_close(tri, torch.clamp(a - t.abs(), min=0) / a**2)
    assert torch.all(tri[t.abs() >= a] == 0)
    for sg, fn in ((RectSurrogate(a), rect_grad), (TriangleSurrogate(a), triangle_grad)):
        tt = t.clone().requires_grad_(True)
        s = sg(tt)
        assert torch.equal(s.detach(), (t > 0).double())
        (g,) = torch.autograd.grad(s.sum(), tt)
        torch.testing.assert_close(g, fn(t, a))


@pytest.mark.parametrize("fn", [rect_grad, triangle_grad])
def test_baselines_integrate_to_one(fn) -> None:
    x = torch.linspace(-2, 2, 400001, dtype=torch.float64)
    assert abs(float(torch.trapezoid(fn(x, 1.0), x)) - 1.0) < 1e-4


def test_make_surrogate() -> None:
    assert isinstance(make_surrogate("dspike", b=2.0), DspikeSurrogate)
    assert isinstance(make_surrogate("rect"), RectSurrogate)
    assert isinstance(make_surrogate("triangular", a=0.5), TriangleSurrogate)
    with pytest.raises(ValueError):
        make_surrogate("sigmoid")
    # no graph: plain spikes, no autograd function
    s = DspikeSurrogate()(torch.tensor(np.array([-1.0, 0.0, 1.0])))
    assert s.tolist() == [0.0, 0.0, 1.0]
