"""Neuron step functions (snnsim.neurons): hand-computed sequences, fixed-point rounding,
int32 overflow, and the exact IF spike-count law of docs/semantics.md §1.1."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from snnsim.errors import SnnsimError
from snnsim.neurons import (
    DspikeLIF,
    DspikeLIFIntParams,
    DspikeLIFParams,
    DsrIF,
    DsrIFParams,
    DsrLIF,
    DsrLIFIntParams,
    DsrLIFParams,
    Integrate,
    channel_param,
    dspike_lif_step,
    dspike_lif_step_int,
    dsr_if_step,
    dsr_if_step_int,
    dsr_lif_step,
    dsr_lif_step_int,
    fixed_point_multiply,
    integrate_step,
    integrate_step_int,
    neuron_step,
)

DEVICES = [
    "cpu",
    pytest.param(
        "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
    ),
]


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> torch.device:
    return torch.device(request.param)


def run_seq(step, xs, p, dtype, device, **kw):
    """Feed a 1-element sequence through ``step``; return spikes and membranes as lists."""
    v = torch.zeros(1, 1, dtype=dtype, device=device)
    ss, vs = [], []
    for x in xs:
        s, v = step(torch.tensor([[x]], dtype=dtype, device=device), v, p, **kw)
        assert s.dtype == dtype and v.dtype == dtype and s.device.type == device.type
        ss.append(s.item())
        vs.append(v.item())
    return ss, vs


# ---------------------------------------------------------------------- float
def test_dsr_if_float_sequence_tie_fires(device):
    p = DsrIFParams(theta=1.0, fire=0.5)
    s, v = run_seq(dsr_if_step, [0.25, 0.25, 0.5, 0.0, 1.75], p, torch.float32, device)
    assert s == [0, 1, 0, 0, 1]  # U = 0.5 == fire at step 2: DSR fires
    assert v == [0.25, -0.5, 0.0, 0.0, 0.75]


def test_dsr_lif_float_sequence(device):
    p = DsrLIFParams(theta=1.0, fire=0.5, leak=0.5, gain=0.5)
    s, v = run_seq(dsr_lif_step, [1.0, 0.0, 2.0, 0.5], p, torch.float32, device)
    assert s == [1, 0, 1, 0]
    assert v == [-0.5, -0.25, -0.125, 0.1875]


def test_dspike_float_sequence_tie_does_not_fire(device):
    p = DspikeLIFParams(fire=0.5, leak=0.5)
    s, v = run_seq(dspike_lif_step, [0.5, 0.25, 0.5, 1.0], p, torch.float32, device)
    assert s == [0, 0, 1, 1]  # U = 0.5 == fire at steps 1 and 2: strict, no spike
    assert v == [0.5, 0.5, 0.0, 0.0]


def test_integrate_float(device):
    s, v = run_seq(integrate_step, [0.5, -0.25, 2.0], None, torch.float32, device)
    assert s == [0, 0, 0]
    assert v == [0.5, 0.25, 2.25]


def test_dsr_lif_float_two_products_then_sum(device):
    """Bitwise equal to numpy float32 with separately rounded products (no FMA)."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 5)).astype(np.float32)
    v = rng.normal(size=(64, 5)).astype(np.float32)
    leak = rng.uniform(0.1, 1.0, size=5).astype(np.float32)
    gain = (1 - leak).astype(np.float32)
    theta = np.full(5, 0.7, np.float32)
    fire = np.full(5, 0.3, np.float32)
    u = (leak * v) + (gain * x)  # numpy: each op rounded to float32
    s_ref = (u >= fire).astype(np.float32)
    v_ref = u - theta * s_ref
    p = DsrLIFParams(
        theta=torch.tensor(theta),
        fire=torch.tensor(fire),
        leak=torch.tensor(leak),
        gain=torch.tensor(gain),
    )
    s, vn = dsr_lif_step(torch.tensor(x, device=device), torch.tensor(v, device=device), p)
    np.testing.assert_array_equal(s.cpu().numpy(), s_ref)
    np.testing.assert_array_equal(vn.cpu().numpy(), v_ref)


def test_per_channel_broadcast_dim1_and_dtype(device):
    theta = torch.tensor([1.0, 2.0, 4.0])
    fire = torch.tensor([0.5, 1.0, 2.0])
    x = torch.ones(2, 3, 4, 5, dtype=torch.float64, device=device)
    s, v = dsr_if_step(x, torch.zeros_like(x), DsrIFParams(theta=theta, fire=fire))
    assert s.dtype == torch.float64 and s.shape == x.shape
    assert s[:, 0].eq(1).all() and s[:, 1].eq(1).all() and s[:, 2].eq(0).all()
    assert v[:, 0].eq(0).all() and v[:, 1].eq(-1).all() and v[:, 2].eq(1).all()
    # [B, F]
    xf = torch.tensor([[0.5, 0.5, 0.5]], device=device)
    s, _ = dsr_if_step(xf, torch.zeros_like(xf), DsrIFParams(theta=theta, fire=fire))
    assert s.tolist() == [[1.0, 0.0, 0.0]]
    # [1] and scalar parameters broadcast everywhere
    s, _ = dsr_if_step(xf, torch.zeros_like(xf), DsrIFParams(theta=np.array([1.0]), fire=0.5))
    assert s.tolist() == [[1.0, 1.0, 1.0]]
    with pytest.raises(SnnsimError):
        channel_param(torch.ones(4), xf)


def test_spike_fn_hook_receives_u_minus_fire():
    seen = []

    def fn(d: torch.Tensor) -> torch.Tensor:
        seen.append(d.clone())
        return (d > 0).float()

    x = torch.tensor([[0.75, 0.25]])
    s, v = dspike_lif_step(x, torch.zeros_like(x), DspikeLIFParams(fire=0.5, leak=0.5), spike_fn=fn)
    assert seen[0].tolist() == [[0.25, -0.25]]
    assert s.tolist() == [[1.0, 0.0]] and v.tolist() == [[0.0, 0.25]]


def test_spike_fn_gradient_flows():
    x = torch.tensor([[0.75, 0.25]], requires_grad=True)

    def surrogate(d):
        sg = torch.sigmoid(4 * d)
        return (d > 0).float() + sg - sg.detach()

    s, _ = dspike_lif_step(
        x, torch.zeros_like(x), DspikeLIFParams(fire=0.5, leak=0.5), spike_fn=surrogate
    )
    s.sum().backward()
    assert x.grad is not None and torch.all(x.grad > 0)


def test_modules_wrap_the_same_functions(device):
    m = DsrIF(DsrIFParams(theta=torch.tensor([1.0, 2.0]), fire=torch.tensor([0.5, 1.0]))).to(device)
    assert m.theta.device.type == device.type
    x = torch.tensor([[0.5, 0.5]], device=device)
    s, v = m(x)
    s2, v2 = m(x, v)
    assert (
        s.tolist() == [[1.0, 0.0]] and s2.tolist() == [[0.0, 1.0]] and v2.tolist() == [[0.0, -1.0]]
    )
    lif = DsrLIF(DsrLIFParams(theta=1.0, fire=0.5, leak=0.5, gain=0.5))
    assert lif(torch.tensor([[1.0]]))[0].item() == 1.0
    dsp = DspikeLIF(
        DspikeLIFIntParams(fire=np.array([2], np.int32), leak_m=3, f=2), precision="int"
    )
    s, v = dsp(torch.tensor([[2]]))
    assert s.item() == 0 and v.item() == 2
    integ = Integrate()
    assert integ(torch.tensor([[1.5]]))[1].item() == 1.5
    with pytest.raises(SnnsimError):
        DsrLIF(DsrLIFParams(theta=1.0, fire=0.5, leak=0.5, gain=0.5), precision="int")


# ---------------------------------------------------------------------- int
@pytest.mark.parametrize("dtype", [torch.int64, torch.float64])
def test_dsr_if_int_sequence(device, dtype):
    p = DsrIFParams(theta=4, fire=2)
    s, v = run_seq(dsr_if_step_int, [1, 1, 2, 2, 7], p, dtype, device)
    assert s == [0, 1, 0, 1, 1]  # U == fire fires (steps 2 and 4: U = 2)
    assert v == [1, -2, 0, -2, 1]


@pytest.mark.parametrize("dtype", [torch.int64, torch.float64])
def test_dsr_lif_int_sequence(device, dtype):
    p = DsrLIFIntParams(theta=4, fire=2, leak_m=2, gain_m=2, f=2)  # leak = gain = 0.5
    s, v = run_seq(dsr_lif_step_int, [4, 0, 8, 2], p, dtype, device)
    # fx(2, -2, 2) = (-4 + 2) >> 2 = -1 (floor shift); fx(2, -1, 2) = 0
    assert s == [1, 0, 1, 0]
    assert v == [-2, -1, 0, 1]


def test_dspike_int_sequence_strict(device):
    p = DspikeLIFIntParams(fire=2, leak_m=3, f=2)  # leak = 0.75
    s, v = run_seq(dspike_lif_step_int, [2, 1, 0, 5], p, torch.int64, device)
    assert s == [0, 1, 0, 1]  # U == fire at step 1 does not fire
    assert v == [2, 0, 0, 0]


def test_integrate_int(device):
    s, v = run_seq(integrate_step_int, [5, -7, 3], None, torch.int64, device)
    assert s == [0, 0, 0] and v == [5, -2, 1]


@pytest.mark.parametrize(
    "m,x,f,want",
    [
        (1, -3, 1, -1),
        (1, -1, 1, 0),
        (1, -5, 2, -1),
        (3, -7, 2, -5),
        (1, -6, 2, -1),
        (1, 6, 2, 2),
        (1, 2, 2, 1),
        (1, -2, 2, 0),
        (7, 0, 3, 0),
        (2**31 - 1, -(2**31), 31, -(2**31 - 1)),
    ],
)
def test_fixed_point_multiply_table(m, x, f, want):
    got = fixed_point_multiply(torch.tensor(m), torch.tensor(x), f)
    assert got.dtype == torch.int64 and got.item() == want


def test_fixed_point_multiply_is_round_half_up(device):
    rng = np.random.default_rng(2)
    m = rng.integers(-(2**31), 2**31, size=500)
    x = rng.integers(-(2**31), 2**31, size=500)
    for f in (1, 7, 16, 31):
        got = (
            fixed_point_multiply(torch.tensor(m, device=device), torch.tensor(x, device=device), f)
            .cpu()
            .tolist()
        )
        want = [
            math.floor(Fraction(int(a) * int(b), 2**f) + Fraction(1, 2))
            for a, b in zip(m, x, strict=True)
        ]
        assert got == want


def test_fixed_point_multiply_rejects_bad_f_and_range():
    with pytest.raises(SnnsimError):
        fixed_point_multiply(torch.tensor(1), torch.tensor(1), 0)
    with pytest.raises(SnnsimError):
        fixed_point_multiply(torch.tensor(1), torch.tensor(1), 32)
    with pytest.raises(SnnsimError):
        fixed_point_multiply(torch.tensor(1), torch.tensor(2**31), 4)
    with pytest.raises(SnnsimError):
        fixed_point_multiply(torch.tensor(1), torch.tensor(0.5, dtype=torch.float64), 4)


def test_int_overflow_raises_with_context(device):
    big = torch.tensor([[2**31 - 1]], device=device)
    with pytest.raises(SnnsimError, match="node 'sn' at step 7"):
        dsr_if_step_int(
            torch.tensor([[1]], device=device),
            big,
            DsrIFParams(theta=2**31 - 1, fire=2**31 - 1),
            where="node 'sn' at step 7",
        )
    with pytest.raises(SnnsimError, match="overflow"):
        integrate_step_int(
            torch.tensor([[-2]], device=device), torch.tensor([[-(2**31) + 1]], device=device)
        )
    with pytest.raises(SnnsimError, match="overflow"):
        dsr_lif_step_int(
            big, big, DsrLIFIntParams(theta=1, fire=1, leak_m=2**30, gain_m=2**30, f=29)
        )
    with pytest.raises(SnnsimError, match="overflow"):
        dspike_lif_step_int(
            big, torch.tensor([[1]], device=device), DspikeLIFIntParams(fire=1, leak_m=2, f=1)
        )
    # exactly at the bound is fine
    s, v = integrate_step_int(
        torch.tensor([[1]], device=device), torch.tensor([[2**31 - 2]], device=device)
    )
    assert v.item() == 2**31 - 1


def test_int_rejects_non_integer_values():
    with pytest.raises(SnnsimError):
        dsr_if_step_int(
            torch.tensor([[0.5]], dtype=torch.float64),
            torch.zeros(1, 1, dtype=torch.float64),
            DsrIFParams(theta=2, fire=1),
        )
    with pytest.raises(SnnsimError):
        dsr_if_step_int(
            torch.tensor([[1]]),
            torch.zeros(1, 1, dtype=torch.int64),
            DsrIFParams(theta=2.5, fire=1),
        )


def test_neuron_step_dispatch():
    x = torch.tensor([[3]])
    s, v = neuron_step(
        "dsr_if", "int", x, torch.zeros_like(x), DsrIFParams(theta=2, fire=1), where="n"
    )
    assert s.item() == 1 and v.item() == 1
    with pytest.raises(SnnsimError):
        neuron_step("relu", "float32", x, x, None)


# ------------------------------------------------------------- the IF law (docs/semantics.md §1.1)
def _if_law(i_star: Fraction, theta: int, alpha: Fraction, n: int) -> int:
    return max(0, min(n, math.floor(n * i_star / theta + 1 - alpha)))


@pytest.mark.parametrize(
    "alpha,theta",
    [
        (Fraction(1), 1),
        (Fraction(1), 6),
        (Fraction(1), 10),
        (Fraction(1, 2), 2),
        (Fraction(1, 2), 6),
        (Fraction(1, 2), 10),
    ],
)
def test_if_law_exact_int(device, alpha, theta):
    fire = alpha * theta
    assert fire.denominator == 1  # the fire level is an integer
    n_steps = 12
    inputs = torch.arange(
        -2 * theta, 2 * theta + 1, device=device
    )  # every integer current in range
    x = inputs.reshape(1, -1)
    v = torch.zeros_like(x)
    total = torch.zeros_like(x)
    p = DsrIFParams(theta=theta, fire=int(fire))
    for _ in range(n_steps):
        s, v = dsr_if_step_int(x, v, p)
        total += s
    want = [_if_law(Fraction(int(i)), theta, alpha, n_steps) for i in inputs.tolist()]
    assert total.reshape(-1).tolist() == want


@pytest.mark.parametrize("alpha", [Fraction(1), Fraction(1, 2)])
def test_if_law_exact_int_all_step_counts(alpha):
    theta = 8
    fire = int(alpha * theta)
    x = torch.arange(-3, 3 * theta + 1).reshape(1, -1)
    v = torch.zeros_like(x)
    total = torch.zeros_like(x)
    for n in range(1, 21):
        s, v = dsr_if_step_int(x, v, DsrIFParams(theta=theta, fire=fire))
        total += s
        want = [_if_law(Fraction(int(i)), theta, alpha, n) for i in x.reshape(-1).tolist()]
        assert total.reshape(-1).tolist() == want, f"N={n}"


def test_if_law_float_away_from_boundaries():
    theta, alpha, n_steps = 1.0, Fraction(1, 2), 10
    rng = np.random.default_rng(3)
    cur = rng.uniform(-0.2, 1.2, size=400).astype(np.float32)
    # keep inputs whose exact N*I/theta + 1 - alpha is far from an integer
    frac = np.array(
        [float(Fraction(float(c)) * n_steps / Fraction(theta) + 1 - alpha) % 1.0 for c in cur]
    )
    cur = cur[(frac > 0.01) & (frac < 0.99)]
    x = torch.tensor(cur).reshape(1, -1)
    v = torch.zeros_like(x)
    total = torch.zeros_like(x)
    for _ in range(n_steps):
        s, v = dsr_if_step(x, v, DsrIFParams(theta=theta, fire=float(alpha) * theta))
        total += s
    want = [_if_law(Fraction(float(c)), 1, alpha, n_steps) for c in cur]
    assert total.reshape(-1).int().tolist() == want
