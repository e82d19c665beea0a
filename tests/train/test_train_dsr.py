"""DSR training layer (snnsim.nn): the IF quantisation law in the training forward, Eq. 19 on
constructed inputs, equal gradients of the per-step and rate-graph backward forms, convergence of
the (weighted) firing rate to the clamp mapping (Propositions 1 and 2), and autograd memory that
does not grow with T in the rate form."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from snnsim.models import create_model
from snnsim.native import optional_core
from snnsim.nn import dsr as dsr_module
from snnsim.nn.dsr import (
    DSRNeuronConfig,
    dsr_defaults,
    dsr_forward,
    lif_weights,
    mean_current,
    simulate_dsr,
)
from snnsim.nn.layers import (
    AvgPoolT,
    ConvT,
    DropoutT,
    DSRNeuron,
    FlattenT,
    LinearT,
    Seq,
    time_mean,
)
from snnsim.nn.net import DSRNet, neuron_config


# ---------------------------------------------------------------------- fused native forward
@given(
    kind=st.sampled_from(["if", "lif"]),
    T=st.integers(1, 12),
    static=st.booleans(),
    channels_last=st.booleans(),
    seed=st.integers(0, 10_000),
)
@settings(max_examples=25)
def test_native_forward_spikes_equal_the_torch_steps(
    kind: str, T: int, static: bool, channels_last: bool, seed: int
) -> None:
    """The CPU float32 fast path (one native pass) fires exactly where the torch step functions
    fire; the two means agree to rounding (their summation order may differ)."""
    assert optional_core("dsr_forward") is not None, "the native module must provide dsr_forward"
    g = torch.Generator().manual_seed(seed)
    cfg = dsr_defaults(kind, T)
    B = 3
    x = torch.randn(((B if static else T * B), 4, 5, 3), generator=g) * cfg.theta0
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    theta = torch.tensor(cfg.theta0 * 1.3)
    f = dsr_forward(x, T, theta, cfg, static)
    out = simulate_dsr(x, T, theta, cfg, static)
    assert torch.equal(f.out, out)
    assert f.out.is_contiguous(memory_format=torch.channels_last) == channels_last
    assert int(f.spikes) == int((out != 0).sum())
    torch.testing.assert_close(f.I, mean_current(x, T, static, cfg), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(f.r, time_mean(out, T), rtol=1e-5, atol=1e-6)


def test_native_forward_falls_back_and_rejects_bad_arrays() -> None:
    """Non-contiguous or float64 currents take the torch path (same result); the native entry
    point itself rejects mismatched sizes and wrong dtypes with clear errors."""
    cfg = dsr_defaults("if", 4)
    x = torch.randn(8, 6, 5) * 6
    theta = torch.tensor(6.0)
    ref = simulate_dsr(x, 4, theta, cfg)
    assert torch.equal(
        dsr_forward(x.transpose(1, 2).contiguous().transpose(1, 2), 4, theta, cfg).out, ref
    )
    assert torch.equal(dsr_forward(x.double(), 4, theta.double(), cfg).out, ref.double())
    core = optional_core("dsr_forward")
    assert core is not None
    a = np.zeros(8, np.float32)

    def law(kind: str = "if", **extra: object) -> dict[str, object]:
        return {"kind": kind, "theta": 1.0, "fire": 0.5, "value": 1.0, **extra}

    def call(x: object, law: object, options: object = None) -> int:
        two = (np.zeros(2, np.float32), np.zeros(2, np.float32))
        return int(core.dsr_forward(x, a.copy(), *two, 4, False, law, options))

    with pytest.raises(ValueError, match="x"):
        call(np.zeros(7, np.float32), law())
    with pytest.raises(TypeError, match="float32"):
        call(np.zeros(8), law())
    with pytest.raises(ValueError, match="kind"):
        call(a, law("lif"))
    with pytest.raises(ValueError, match="current_weights"):
        call(a, law("lif", leak=0.9, gain=0.1), {"current_weights": np.ones(3, np.float32)})
    for pool in (
        (2, 2**62, 2**62, 4, False),
        (0, 1, 2, 1, False),
        (2, 1, 3, 1, False),
    ):  # overflow, k=0, odd H
        with pytest.raises(ValueError, match="pool"):
            call(a, law(), {"pool": pool})
    # the grouped arguments name the key that is wrong
    with pytest.raises(ValueError, match="'law': missing key 'value'"):
        call(a, {"kind": "if", "theta": 1.0, "fire": 0.5})
    with pytest.raises(ValueError, match="'law': unknown key 'gian'"):
        call(a, law("lif", leak=0.9, gian=0.1))
    with pytest.raises(TypeError, match=r"law\['theta'\]: expected a float"):
        call(a, law(theta="1"))
    with pytest.raises(TypeError, match="options: expected a dict"):
        call(a, law(), [("pool", None)])
    with pytest.raises(ValueError, match="'options': unknown key 'pol'"):
        call(a, law(), {"pol": None})
    assert call(np.full(8, 3.0, np.float32), law(), {"pool": None}) > 0


def test_training_step_is_the_same_without_the_native_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """One rate-form training step gives the same loss and (to rounding) the same gradients with
    the native forward and with the torch fallback."""
    grads = []
    for native in (True, False):
        if not native:
            monkeypatch.setattr(dsr_module, "optional_core", lambda feature: None)
        torch.manual_seed(0)
        net = create_model("dsr-mnist-cnn", neuron="lif", T=5)
        net.train()
        x = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(1))
        loss = torch.nn.functional.cross_entropy(net(x), torch.arange(8) % 10)
        loss.backward()
        grads.append(
            [loss.detach()] + [p.grad.clone() for p in net.parameters() if p.grad is not None]
        )
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("kind", ["if", "lif"])
def test_native_rate_backward_equals_the_torch_masks(
    kind: str, channels_last: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fused rate-form backward gives the torch formula's input gradient bit for bit (values
    on both bounds included) and its threshold gradient to float32 rounding, in either memory
    format; its native entry point rejects mismatched sizes and a bad tau by name."""
    cfg = dsr_defaults(kind, 5)
    theta = torch.tensor(cfg.theta0)
    ub = float(dsr_module._upper(theta, cfg))
    g = torch.Generator().manual_seed(3)
    I = (torch.rand(4, 6, 8, 8, generator=g) * 2.4 - 0.6) * ub
    I.view(-1)[:3] = torch.tensor([0.0, ub, -0.0])
    G = torch.randn(4, 6, 8, 8, generator=g)
    if channels_last:
        I = I.contiguous(memory_format=torch.channels_last)
    got = dsr_module._mask_grads(G, I, theta, cfg, True)
    monkeypatch.setattr(dsr_module, "optional_core", lambda feature: None)
    want = dsr_module._mask_grads(G, I, theta, cfg, True)
    assert torch.equal(got[0], want[0])
    assert got[1] is not None and want[1] is not None
    torch.testing.assert_close(got[1], want[1], rtol=1e-5, atol=1e-4)
    monkeypatch.undo()
    core = optional_core("dsr_rate_backward")
    assert core is not None, "the native module must provide dsr_rate_backward"
    with pytest.raises(ValueError, match="mean_current"):
        core.dsr_rate_backward(
            np.zeros(4, np.float32), np.zeros(3, np.float32), np.zeros(4, np.float32), 1.0, False
        )
    with pytest.raises(ValueError, match="tau"):
        core.dsr_rate_backward(
            np.zeros(4, np.float32),
            np.zeros(4, np.float32),
            np.zeros(4, np.float32),
            1.0,
            True,
            0.0,
        )


# ---------------------------------------------------------------------- defaults
def test_paper_defaults_per_T() -> None:
    c = dsr_defaults("if", 20)
    assert (c.theta0, c.alpha, c.bound, c.grad_scale) == (6.0, 0.5, 0.01, 1.0)
    c = dsr_defaults("lif", 20)
    assert (c.theta0, c.bound, c.dt, c.alpha, c.tau, c.grad_scale) == (
        0.3,
        5e-4,
        0.05,
        0.3,
        1.0,
        0.05,
    )
    assert dsr_defaults("lif", 10).alpha == 0.4 and dsr_defaults("lif", 15).alpha == 0.4
    c = dsr_defaults("lif", 5)
    assert (c.theta0, c.bound, c.dt, c.alpha, c.grad_scale) == (0.6, 1e-3, 0.1, 0.5, 0.1)
    assert neuron_config("if", 5, theta_grad_scale=2.0, alpha=None).grad_scale == 2.0
    with pytest.raises(ValueError, match="alpha"):
        DSRNeuronConfig(alpha=0.0)


def test_threshold_kept_above_bound_and_trainable_flag() -> None:
    n = DSRNeuron(neuron_config("if", 3, bound=0.5))
    with torch.no_grad():
        n.theta.fill_(-1.0)
    n.train()
    n(Seq(torch.ones(2, 4), 3, True))
    assert float(n.theta.detach()) == 0.5
    fixed = DSRNeuron(neuron_config("if", 3, train_theta=False))
    assert not fixed.theta.requires_grad


# -------------------------------------------------------------------- quantisation law (float mode)
def _count_law(N: int, I: float, theta: float, alpha: float) -> int:
    return min(max(math.floor(N * I / theta + 1 - alpha), 0), N)


@given(
    N=st.integers(1, 30),
    alpha=st.sampled_from([0.5, 1.0, 0.3, 0.75]),
    theta=st.floats(0.1, 8.0),
    u=st.floats(-0.5, 1.5),
    mode=st.sampled_from(["rate", "step"]),
)
def test_if_quantisation_law_in_training_forward(
    N: int, alpha: float, theta: float, u: float, mode: str
) -> None:
    I = u * theta
    x = N * I / theta + 1 - alpha
    assume(abs(x - round(x)) > 1e-3)  # away from the rounding boundaries
    cfg = neuron_config("if", N, theta0=theta, alpha=alpha, bound=0.01)
    net = DSRNet([LinearT(1, 1, bias=False), DSRNeuron(cfg)], cfg, N, mode=mode)
    with torch.no_grad():
        net.body[0].weight.fill_(1.0)
    net.train()
    xin = torch.full((3, 1), I)
    r = net(xin)  # the representation theta * count / N
    count = r.detach() * N / net.body[1].theta.detach()
    expect = _count_law(N, I, float(net.body[1].theta.detach()), alpha)
    assert torch.allclose(count, torch.full_like(count, float(expect)), atol=1e-3)


# --------------------------------------------------------------------- Eq. 19 on constructed inputs
@pytest.mark.parametrize("mode", ["rate", "step"])
@pytest.mark.parametrize("kind", ["if", "lif"])
def test_eq19_threshold_and_input_gradients(kind: str, mode: str) -> None:
    T = 4
    cfg = neuron_config(kind, T, theta0=0.5, bound=1e-3, theta_grad_scale=None)
    ub = 0.5 if kind == "if" else 0.5 * cfg.tau / cfg.dt
    I = torch.tensor([-1.0, 0.0, 0.25 * ub, ub, 1.5 * ub, 3 * ub, 0.75 * ub, 2 * ub])
    G = torch.tensor([0.3, -0.2, 0.5, 0.7, -1.1, 0.4, 0.9, 2.0])
    neuron = DSRNeuron(cfg)
    neuron.train()
    xin = I.clone().reshape(1, -1).requires_grad_(True)
    seq = Seq(xin, T, True, xin if mode == "rate" else None)
    out = neuron(seq)
    # the loss sees the plain time mean: in the step form dL/dout_t = G/T at every step, which
    # the neuron collapses (T x the lambda-weighted mean for LIF) back to G
    r = out.rate if mode == "rate" else time_mean(out.steps, T)
    (r.reshape(-1) * G).sum().backward()
    if kind == "if":
        mask = (I >= 0) & (I <= ub)
        expect_in = G * mask
        expect_theta = float((G * (I > ub)).sum())
    else:
        mask = (I > 0) & (I < ub)
        expect_in = G * mask / cfg.tau
        expect_theta = float((G * (I > ub)).sum()) * cfg.dt  # the public code's x dt
    assert torch.allclose(xin.grad.reshape(-1), expect_in, atol=1e-6)
    assert neuron.theta.grad is not None
    assert float(neuron.theta.grad) == pytest.approx(expect_theta, rel=1e-6, abs=1e-7)


def test_theta_grad_scale_is_configurable() -> None:
    I = torch.tensor([[2.0, 3.0, 0.5]])
    grads = []
    for scale in (1.0, 0.25):
        n = DSRNeuron(neuron_config("if", 2, theta0=1.0, theta_grad_scale=scale))
        n.train()
        x = I.clone().requires_grad_(True)
        n(Seq(x, 2, True, x)).rate.sum().backward()
        grads.append(float(n.theta.grad))
    assert grads[0] == pytest.approx(2.0) and grads[1] == pytest.approx(0.5)


# ---------------------------------------------------------------------- (a) == (b) without BN
def _net(kind: str, T: int, mode: str, static: bool, seed: int, dropout: float) -> DSRNet:
    torch.manual_seed(seed)
    cfg = neuron_config(kind, T, theta0=1.0 if kind == "if" else 0.1, bound=1e-3)
    body = [
        ConvT(2, 5, 3, padding=1),
        DSRNeuron(cfg),
        AvgPoolT(2),
        DropoutT(dropout) if dropout > 0 else torch.nn.Identity(),
        ConvT(5, 6, 3, padding=1, bias=False),
        DSRNeuron(cfg),
        FlattenT(),
        LinearT(6 * 4 * 4, 4),
        DSRNeuron(cfg),
    ]
    return DSRNet(body, cfg, T, mode=mode, static_input=static)


@given(
    kind=st.sampled_from(["if", "lif"]),
    T=st.integers(1, 7),
    static=st.booleans(),
    seed=st.integers(0, 10_000),
    dropout=st.sampled_from([0.0, 0.3]),
)
@settings(max_examples=15)
def test_step_and_rate_backward_give_equal_gradients(
    kind: str, T: int, static: bool, seed: int, dropout: float
) -> None:
    g = torch.Generator().manual_seed(seed)
    scale = 3.0 if kind == "if" else 12.0
    x = torch.rand((3, 2, 8, 8) if static else (3, T, 2, 8, 8), generator=g) * scale
    y = torch.randint(0, 4, (3,), generator=g)
    grads, logits = {}, {}
    for mode in ("step", "rate"):
        net = _net(kind, T, mode, static, seed, dropout)
        net.train()
        torch.manual_seed(seed + 1)  # the same dropout masks in both forms
        out = net(x)
        torch.nn.functional.cross_entropy(out, y).backward()
        logits[mode] = out.detach()
        grads[mode] = {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}
    assert torch.equal(logits["step"], logits["rate"])  # the same SNN forward
    assert grads["step"].keys() == grads["rate"].keys()
    for name, a in grads["step"].items():
        b = grads["rate"][name]
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6 * max(1.0, float(a.abs().max()))), name


def test_bn_networks_forward_identically_in_both_forms() -> None:
    x = torch.rand(4, 1, 28, 28)
    outs = []
    for mode in ("step", "rate"):
        torch.manual_seed(3)
        net = create_model("dsr-mnist-cnn", neuron="if", T=3, mode=mode, theta0=1.0)
        net.train()
        out = net(x)
        out.sum().backward()
        outs.append(
            (out.detach(), net.body[1].running_var.clone(), net.body[0].weight.grad.clone())
        )
    assert torch.allclose(outs[0][0], outs[1][0], atol=1e-5)
    assert torch.allclose(outs[0][1], outs[1][1], atol=1e-6)
    # the static first layer sees no temporal variance: its BN gradient is exact in the rate form
    assert torch.allclose(outs[0][2], outs[1][2], rtol=1e-3, atol=1e-5)


# ---------------------------------------------------------------------- Propositions 1 and 2
@given(theta=st.floats(0.2, 5.0), alpha=st.sampled_from([0.5, 1.0, 0.3]), seed=st.integers(0, 1000))
@settings(max_examples=10)
def test_if_rate_converges_to_clamp(theta: float, alpha: float, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    I = (torch.rand(64, generator=g, dtype=torch.float64) * 1.6 - 0.3) * theta
    cfg = neuron_config("if", 1, alpha=alpha)
    target = I.clamp(0, theta)
    for N in (10, 100, 1000):
        r = time_mean(
            simulate_dsr(I, N, torch.tensor(theta, dtype=torch.float64), cfg, static=True), N
        )
        assert float((r - target).abs().max()) <= theta / N + 1e-9


def test_lif_weighted_rate_converges_to_clamp() -> None:
    """Proposition 2: with dt = T_total/N (T_total = 8 tau) and a spike value theta/dt = c held
    fixed, the lambda-weighted rate tends to clamp(I/tau, 0, c) with an O(dt) error."""
    tau, c, Ttot = 1.0, 2.0, 8.0
    I = torch.linspace(-0.5, 3.0, 71, dtype=torch.float64)
    target = (I / tau).clamp(0, c)
    errs = []
    for N in (50, 400, 3200):
        dt = Ttot / N
        cfg = DSRNeuronConfig(kind="lif", theta0=c * dt, alpha=0.5, bound=1e-9, dt=dt, tau=tau)
        out = simulate_dsr(I, N, torch.tensor(c * dt, dtype=torch.float64), cfg, static=True)
        w = lif_weights(N, cfg, out)
        r = torch.tensordot(w, out.reshape(N, -1), dims=1)
        errs.append(float((r - target).abs().max()))
        assert errs[-1] <= 3.0 * c * dt + 0.5 * float(I.abs().max()) * dt + 1e-9
    assert errs[0] > errs[1] > errs[2]


# ---------------------------------------------------------------------- memory flat in T
def _saved_bytes(mode: str, T: int) -> int:
    torch.manual_seed(0)
    net = create_model("dsr-mnist-cnn", neuron="lif", T=T, mode=mode)
    net.train()
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = net(torch.rand(4, 1, 28, 28))
    out.sum().backward()
    return total


def test_rate_form_keeps_memory_flat_in_T() -> None:
    assert _saved_bytes("rate", 2) == _saved_bytes("rate", 12)
    assert _saved_bytes("step", 12) > 3 * _saved_bytes("step", 2) > 0


# ---------------------------------------------------------------------- time-chunked forward
def _one_step(
    net: DSRNet, x: torch.Tensor, chunk: int | None
) -> tuple[float, list[torch.Tensor], dict, list[torch.Tensor]]:
    net.time_chunk = chunk
    net.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(net(x), torch.arange(x.shape[0]) % 10)
    loss.backward()
    grads = [p.grad.clone() for p in net.parameters() if p.grad is not None]
    stats = [b.clone() for n, b in net.named_buffers() if "running" in n]
    return float(loss.detach()), grads, net.firing_rates(), stats


def _biases_before_bn(net: DSRNet) -> list[bool]:
    """Per parameter with a gradient (in ``net.parameters()`` order): whether it is the bias of
    a conv/linear layer directly followed by a batch norm (VGG-11, as the public code), whose
    exact gradient is zero: the normalisation removes any per-channel constant."""
    mods = list(net.body.children())
    flagged = {
        id(m.bias)
        for m, nxt in zip(mods, mods[1:], strict=False)
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))
        and m.bias is not None
        and isinstance(nxt, torch.nn.modules.batchnorm._BatchNorm)
    }
    return [id(p) in flagged for p in net.parameters() if p.grad is not None]


@pytest.mark.parametrize(
    "name, kw, shape",
    [
        # plain memory format: channels-last convolutions may round a chunk's currents
        # differently from the whole run's (test_channels_last_is_the_same_network)
        ("dsr-mnist-cnn", {"neuron": "if", "T": 5, "channels_last": False}, (12, 1, 28, 28)),
        ("dsr-mnist-cnn", {"neuron": "lif", "T": 7, "channels_last": False}, (12, 1, 28, 28)),
        (
            "dsr-vgg11",
            {"neuron": "if", "T": 3, "image_size": 16, "dropout": 0.1},
            (4, 3, 2, 16, 16),
        ),
        ("dsr-mlp", {"neuron": "lif", "T": 6}, (12, 784)),
    ],
)
@pytest.mark.parametrize("chunk", [1, 2, 4])
def test_time_chunked_forward_equals_the_whole_run(
    name: str, kw: dict, shape: tuple, chunk: int
) -> None:
    """Running the steps a chunk at a time (membranes carried over, batch-norm statistics from
    extra passes) gives the whole run's loss, gradients, firing rates and running statistics
    (to float rounding), for static images, event-frame sequences with dropout, IF and LIF."""
    x = torch.rand(shape, generator=torch.Generator().manual_seed(3))
    results = []
    for c in (None, chunk):
        torch.manual_seed(0)
        net = create_model(name, **kw)
        net.train()
        results.append(_one_step(net, x, c))
    (l0, g0, r0, s0), (l1, g1, r1, s1) = results
    assert l1 == pytest.approx(l0, rel=1e-5)
    assert r1 == pytest.approx(r0, rel=1e-6, abs=1e-7)
    # gradients that are zero in exact arithmetic hold only rounding noise in both runs
    noise = 1e-5 * max(float(g.abs().max()) for g in g0)
    for a, b, zero in zip(g1, g0, _biases_before_bn(net), strict=True):
        if zero:
            assert float(a.abs().max()) <= noise and float(b.abs().max()) <= noise
            continue
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5 * float(b.abs().max()) + 1e-9)
    for a, b in zip(s1, s0, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("chunk", [None, 2])
@pytest.mark.parametrize("neuron", ["if", "lif"])
def test_channels_last_is_the_same_network(neuron: str, chunk: int | None) -> None:
    """The MNIST CNN stores its activations channels-last by default (every layer after the
    first conv, whose one-channel input cannot say so itself); the plain format is the same
    network: equal loss and gradients up to the spikes that float rounding of the convolutions
    flips (near-threshold currents), also time-chunked."""
    x = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(5))
    out = []
    for cl in (True, False):
        torch.manual_seed(0)
        net = create_model("dsr-mnist-cnn", neuron=neuron, T=5, channels_last=cl)
        assert net.channels_last == cl
        seen: list[torch.Tensor] = []
        hook = net.body[1].register_forward_hook(lambda m, i, o, seen=seen: seen.append(o.steps))
        net.train()
        loss, grads, rates, _ = _one_step(net, x, chunk)
        hook.remove()
        if chunk is None:  # (the chunked forward calls the layers' parts, not the modules)
            assert seen and seen[0].is_contiguous(memory_format=torch.channels_last) == cl
        out.append((loss, grads, rates))
    (l0, g0, r0), (l1, g1, r1) = out
    assert l1 == pytest.approx(l0, rel=1e-3)
    assert r1 == pytest.approx(r0, rel=1e-2)
    for a, b in zip(g1, g0, strict=True):
        assert float((a - b).norm()) <= 0.05 * float(b.norm()) + 1e-6


def test_one_channel_images_get_channels_last_strides() -> None:
    """A one-channel image is laid out channels-last already; ``as_channels_last`` gives it the
    strides that say so (same memory, same values), so convolutions take the channels-last
    kernel and return channels-last outputs; ``memory_format_of`` reads those strides."""
    x = torch.rand(3, 1, 6, 5)
    y = dsr_module.as_channels_last(x)
    assert y.data_ptr() == x.data_ptr() and torch.equal(x, y)
    assert dsr_module.memory_format_of(x) == torch.contiguous_format
    assert dsr_module.memory_format_of(y) == torch.channels_last
    out = torch.nn.functional.conv2d(y, torch.randn(4, 1, 3, 3), padding=1)
    assert out.is_contiguous(memory_format=torch.channels_last) and not out.is_contiguous()
    z = torch.rand(3, 4, 6, 5)
    assert dsr_module.memory_format_of(dsr_module.as_channels_last(z)) == torch.channels_last


def test_time_chunk_refuses_residual_bodies_and_bad_values() -> None:
    net = create_model("dsr-mnist-cnn", neuron="if", T=4)
    with pytest.raises(ValueError, match="positive int"):
        net.time_chunk = 0
    res = create_model("dsr-preresnet20", neuron="if", T=2)
    with pytest.raises(ValueError, match="not supported by the time-chunked"):
        res.time_chunk = 2
    net.time_chunk = 8  # larger than T: the whole run at once
    net.train()
    net(torch.rand(2, 1, 28, 28)).sum().backward()


@pytest.mark.parametrize("channels_last", [False, True])
def test_rate_batch_norm_kernel_equals_its_autograd_definition(channels_last: bool) -> None:
    """The rate-graph batch norm (one forward kernel + torch's batch-norm backward with the
    total-variance invstd) equals the plain autograd formula: values and gradients for input,
    weight and bias, including channels whose step variance is below the between-sample one."""
    from snnsim.nn.layers import BatchNorm1dT, BatchNormT

    torch.manual_seed(0)
    for bn, shape in ((BatchNormT(8), (16, 8, 5, 5)), (BatchNorm1dT(10), (16, 10))):
        with torch.no_grad():
            bn.weight.uniform_(0.5, 2.0)
            bn.bias.uniform_(-1.0, 1.0)
        z = torch.randn(shape) * 3 + 1
        if channels_last and z.ndim == 4:
            z = z.contiguous(memory_format=torch.channels_last)
        z.requires_grad_(True)
        dims = [0] + list(range(2, z.ndim))
        var_all = z.detach().var(dim=dims, unbiased=False) * torch.linspace(0.5, 2.0, shape[1])
        g = torch.randn(shape)
        results = []
        for f in (bn.rate_graph, bn.rate_graph_reference):
            z.grad = bn.weight.grad = bn.bias.grad = None
            y = f(z, var_all)
            (y * g).sum().backward()
            results.append(
                (y.detach(), z.grad.clone(), bn.weight.grad.clone(), bn.bias.grad.clone())
            )
        for a, b in zip(*results, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["if", "lif"])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("static", [False, True])
def test_pooling_inside_the_neuron_forward_is_exact(
    kind: str, channels_last: bool, static: bool
) -> None:
    """``dsr_forward(pool=k)`` returns exactly ``avg_pool2d`` of the full outputs (k = 2, 3),
    and a whole network whose neuron layers pool inside their forward trains exactly like the
    same layers applied one by one (loss, gradients, firing rates, eval outputs)."""
    cfg = dsr_defaults(kind, 6)
    g = torch.Generator().manual_seed(7)
    x = torch.randn(((3 if static else 18), 4, 6, 12), generator=g) * cfg.theta0
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    theta = torch.tensor(cfg.theta0 * 1.2)
    full = simulate_dsr(x, 6, theta, cfg, static)
    for k in (2, 3):
        f = dsr_forward(x, 6, theta, cfg, static, pool=k)
        assert torch.equal(f.out, torch.nn.functional.avg_pool2d(full, k))
        assert int(f.spikes) == int((full != 0).sum())

    import snnsim.nn.net as net_module
    from snnsim.nn.layers import run_layers

    def one_by_one(layers: torch.nn.Sequential, flow: object) -> object:
        for m in layers.children():
            flow = m(flow)
        return flow

    results = []
    for runner in (one_by_one, run_layers):
        net_module.run_layers = runner
        try:
            torch.manual_seed(0)
            net = create_model("dsr-mnist-cnn", neuron=kind, T=4, channels_last=channels_last)
            net.train()
            xb = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(1))
            loss = torch.nn.functional.cross_entropy(net(xb), torch.arange(6))
            loss.backward()
            net.eval()
            with torch.no_grad():
                ev = net(xb)
            results.append(
                (loss.detach(), [p.grad for p in net.parameters()], net.firing_rates(), ev)
            )
        finally:
            net_module.run_layers = run_layers
    (l0, g0, r0, e0), (l1, g1, r1, e1) = results
    assert torch.equal(l0, l1) and r0 == r1 and torch.equal(e0, e1)
    for a, b in zip(g0, g1, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("chunk", [None, 2])
def test_rate_form_gradients_equal_the_step_form_with_batch_norm(chunk: int | None) -> None:
    """With batch norm over time and ``exact_bn_grad`` (the default), the rate form adds the
    producing op's weight-gradient term of the steps' temporal deviations (computed in the
    forward, weight-sized): for IF networks its gradients then equal the per-step form's (the
    public DSR code's), also time-chunked. For LIF the lambda-weighted collapse of the
    per-step input gradients is not reproduced (the remaining approximation, documented in
    snnsim.nn.layers)."""
    x = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    grads = {}
    for mode in ("step", "rate"):
        torch.manual_seed(0)
        net = create_model("dsr-mnist-cnn", neuron="if", T=5, mode=mode)
        net.train()
        if mode == "rate":
            assert net.exact_bn_grad  # the default
            net.time_chunk = chunk
        torch.nn.functional.cross_entropy(net(x), torch.arange(8) % 10).backward()
        grads[mode] = {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}
    assert grads["step"].keys() == grads["rate"].keys()
    for name, g in grads["step"].items():
        torch.testing.assert_close(
            grads["rate"][name],
            g,
            rtol=1e-4,
            atol=1e-5 * float(g.abs().max()) + 1e-9,
            msg=lambda m, name=name: f"{name}: {m}",
        )
    # without the term (the between-sample-only gradient) the conv weights differ
    torch.manual_seed(0)
    net = create_model("dsr-mnist-cnn", neuron="if", T=5, mode="rate")
    net.train()
    net.exact_bn_grad = False
    torch.nn.functional.cross_entropy(net(x), torch.arange(8) % 10).backward()
    w = dict(net.named_parameters())["body.4.weight"].grad
    assert not torch.allclose(w, grads["step"]["body.4.weight"], rtol=1e-3, atol=1e-6)


def test_forward_hooks_still_see_every_neuron_layer() -> None:
    """A forward hook on a neuron layer that a pool follows still receives its full-size spikes
    (the fused neuron+pool forward steps aside while hooks are registered)."""
    net = create_model("dsr-mnist-cnn", neuron="if", T=3)
    net.eval()
    seen: dict[str, tuple[int, ...]] = {}
    for name, m in net.neurons():
        m.register_forward_hook(
            lambda mod, inp, out, name=name: seen.__setitem__(name, tuple(out.steps.shape))
        )
    with torch.no_grad():
        net(torch.rand(2, 1, 28, 28))
    assert seen == {"body.2": (6, 32, 28, 28), "body.6": (6, 64, 14, 14), "body.11": (6, 10)}
