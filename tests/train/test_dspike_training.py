"""Dspike training pieces: LIF with hard reset and strict firing, tdBN over T*B, the FDG tool,
the temperature search (Algorithm 1), Time Inheritance Training, the model registry."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from snnsim.models import create_model, list_models
from snnsim.nn.dspike import DspikeNet, DspikeNeuron
from snnsim.nn.surrogates import DspikeSurrogate, RectSurrogate
from snnsim.nn.tdbn import TdBN
from snnsim.train.dspike import FrozenStats, inherit, select_temperature, temperature_search
from snnsim.train.fdg import autograd_grad, cosine_similarity, finite_difference_grad

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _tiny(T: int = 3, static: bool = True, seed: int = 0) -> DspikeNet:
    torch.manual_seed(seed)
    return create_model(
        "dspike-mnist-cnn", T=T, in_channels=1, image_size=8, channels=(4, 6), static_input=static
    )  # type: ignore[return-value]  # the registry returns nn.Module; these are Dspike networks / tensor datasets


# ---------------------------------------------------------------------- neuron
@given(
    leak=st.sampled_from([0.0, 0.25, 0.5, 0.9, 1.0]),
    T=st.integers(1, 8),
    cur=st.lists(st.floats(-1.0, 2.0, width=32), min_size=1, max_size=8),
)
def test_lif_hard_reset_strict_firing(leak: float, T: int, cur: list[float]) -> None:
    x = torch.tensor(cur, dtype=torch.float32).reshape(1, 1, -1).expand(T, 1, -1).clone()
    n = DspikeNeuron(DspikeSurrogate(), leak=leak, vth=0.5, T=T)
    s = n(x)
    u = torch.zeros(len(cur))
    for t in range(T):
        pre = leak * u + x[t, 0]
        want = (pre > 0.5).float()
        assert torch.equal(s[t, 0], want)
        u = torch.where(want > 0, torch.zeros_like(pre), pre)


def test_exactly_at_threshold_does_not_fire_and_reset_is_to_zero() -> None:
    n = DspikeNeuron(DspikeSurrogate(), leak=0.5, vth=0.5, T=3)
    n.record = True
    s = n(torch.tensor([[[0.5, 0.6]]]))  # static current, 3 steps
    # neuron 0: U = 0.5 (no), 0.75 (fire), 0.5 (no: reset to 0, then 0 + 0.5)
    assert s[:, 0, 0].tolist() == [0.0, 1.0, 0.0]
    # neuron 1: 0.6 fire -> 0, 0.6 fire, 0.6 fire
    assert s[:, 0, 1].tolist() == [1.0, 1.0, 1.0]
    margins = torch.stack(n.recorded["margins"])[:, 0, 0]
    torch.testing.assert_close(margins, torch.tensor([0.0, 0.25, 0.0]))


def test_static_input_equals_repeated_frames() -> None:
    static = _tiny(T=4, static=True)
    frames = _tiny(T=4, static=False)
    frames.load_state_dict(static.state_dict())
    x = torch.rand(5, 1, 8, 8)
    xs = x.unsqueeze(1).expand(5, 4, 1, 8, 8)
    for mode in ("train", "eval"):
        getattr(static, mode)()
        getattr(frames, mode)()
        torch.testing.assert_close(static(x), frames(xs), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------- tdBN
def test_tdbn_normalises_over_time_and_batch() -> None:
    torch.manual_seed(0)
    T, B, C = 4, 3, 5
    x = torch.randn(T, B, C, 6, 6) * torch.arange(1, T + 1).reshape(T, 1, 1, 1, 1) + 2.0
    bn = TdBN(C, alpha=1.0, vth=0.5)
    with torch.no_grad():
        bn.weight.copy_(torch.linspace(0.5, 2.0, C))
        bn.bias.copy_(torch.linspace(-1, 1, C))
    y = bn(x).detach()
    dims = (0, 1, 3, 4)  # statistics over T*B and space together, not per step
    torch.testing.assert_close(y.mean(dims), bn.bias.detach(), atol=1e-5, rtol=0)
    std = y.var(dims, unbiased=False).sqrt()
    torch.testing.assert_close(std, (bn.weight * 0.5 * 1.0).detach(), atol=1e-4, rtol=1e-4)
    # per step the statistics differ (the steps have different spreads)
    assert float(y[0].std()) < float(y[-1].std())
    mean_tb = x.mean(dims)
    torch.testing.assert_close(bn.running_mean, 0.1 * mean_tb, atol=1e-5, rtol=1e-5)
    # eval uses the running statistics, fold() is that affine map
    bn.eval()
    scale, shift = bn.fold()
    ye = bn(x)
    torch.testing.assert_close(
        ye, x * scale.reshape(1, 1, C, 1, 1) + shift.reshape(1, 1, C, 1, 1), atol=1e-5, rtol=1e-5
    )


def test_tdbn_groups_match_separate_batches_and_keep_stats() -> None:
    torch.manual_seed(1)
    bn = TdBN(3, alpha=2.0, vth=0.5)
    x = torch.randn(2, 3 * 4, 3, 5, 5)  # 3 groups of 4 samples
    before = bn.running_mean.clone()
    bn.groups = 3
    y = bn(x)
    bn.groups = 1
    assert torch.equal(bn.running_mean, before)
    with FrozenStats(bn):
        for g in range(3):
            torch.testing.assert_close(
                y[:, 4 * g : 4 * g + 4], bn(x[:, 4 * g : 4 * g + 4]), atol=1e-5, rtol=1e-5
            )
    assert torch.equal(bn.running_mean, before)


# ---------------------------------------------------------------------- FDG
def _ann(seed: int = 0) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(10, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4))
    return net, torch.randn(32, 10), torch.randint(0, 4, (32,))


def test_fdg_matches_true_gradient_on_an_ann() -> None:
    """The paper's Experiment I: on an ANN, cos(FDG, autograd) > 0.99 at eps = 1e-3."""
    net, x, y = _ann()
    w = net[0].weight

    def loss() -> torch.Tensor:
        return F.cross_entropy(net(x), y)

    true = autograd_grad(loss, w)
    before = w.detach().clone()
    fdg = finite_difference_grad(w, 1e-3, loss_fn=loss)
    assert torch.equal(w.detach(), before)  # restored exactly
    assert cosine_similarity(fdg, true) > 0.99

    def batched(deltas: torch.Tensor) -> torch.Tensor:
        ws = w.detach().unsqueeze(0) + deltas  # [K, 16, 10]
        h = torch.tanh(torch.einsum("bi,koi->kbo", x, ws) + net[0].bias)
        out = net[2](h)
        return torch.stack([F.cross_entropy(o, y) for o in out])

    fdg_b = finite_difference_grad(w, 1e-3, batched_loss_fn=batched, chunk=40)
    assert cosine_similarity(fdg_b, true) > 0.99
    torch.testing.assert_close(fdg_b, fdg, atol=1e-3, rtol=1e-2)
    # a subset of coordinates
    coords = [0, 5, 17, 100]
    sub = finite_difference_grad(w, 1e-3, loss_fn=loss, coords=coords)
    assert int((sub.reshape(-1) != 0).sum()) <= len(coords)
    assert cosine_similarity(sub, true, coords=coords) > 0.99


def test_fdg_argument_checks() -> None:
    w = torch.zeros(3)
    with pytest.raises(ValueError):
        finite_difference_grad(w, 0.0, loss_fn=lambda: w.sum())
    with pytest.raises(ValueError):
        finite_difference_grad(w, 0.1)
    assert cosine_similarity(torch.zeros(3), torch.ones(3)) == 0.0


def test_stacked_first_layer_losses_equal_separate_forwards() -> None:
    model = _tiny(T=3)
    model.train()
    x, y = torch.rand(6, 1, 8, 8), torch.randint(0, 10, (6,))
    w = model.first_layer().weight
    torch.manual_seed(3)
    deltas = torch.randn(4, *w.shape) * 0.1
    with FrozenStats(model), torch.no_grad():
        stacked = model.first_layer_losses(x, y, deltas)
        orig = w.detach().clone()
        sep = []
        for d in deltas:
            w.data.copy_(orig + d)
            sep.append(F.cross_entropy(model(x), y))
        w.data.copy_(orig)
    torch.testing.assert_close(stacked, torch.stack(sep), atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------- Algorithm 1
def test_select_temperature_picks_the_most_similar_candidate() -> None:
    fdg = torch.tensor([1.0, 0.0, 0.0])

    # constructed: the surrogate gradient's angle to the FDG shrinks as b grows towards 1.6
    def sg(b: float) -> torch.Tensor:
        return torch.tensor([1.0, abs(b - 1.6), 0.0])

    r = select_temperature(1.0, fdg, sg, db=0.2)
    assert r.candidates == pytest.approx([0.8, 1.0, 1.2])
    assert r.b == pytest.approx(1.2)
    assert r.cosines[2] > r.cosines[1] > r.cosines[0]
    r = select_temperature(2.0, fdg, sg, db=0.2)  # best is now the smaller candidate
    assert r.b == pytest.approx(1.8)
    r = select_temperature(1.6, fdg, sg, db=0.2)
    assert r.b == pytest.approx(1.6)
    # candidates below the minimum are dropped
    r = select_temperature(0.1, fdg, lambda b: torch.tensor([1.0, b, 0.0]), db=0.2)
    assert min(r.candidates) >= 0.05 and r.b == pytest.approx(0.1)


def test_temperature_search_on_a_network() -> None:
    model = _tiny(T=3)
    x, y = torch.rand(8, 1, 8, 8), torch.randint(0, 10, (8,))
    stats = [m.running_mean.clone() for m in model.modules() if isinstance(m, TdBN)]
    res = temperature_search(model, x, y, db=0.2, eps=0.1, chunk=32)
    assert res.b in res.candidates and len(res.cosines) == 3
    assert res.cosines[res.candidates.index(res.b)] == max(res.cosines)
    assert model.temperature == res.b
    for s, m in zip(stats, [m for m in model.modules() if isinstance(m, TdBN)], strict=True):
        assert torch.equal(s, m.running_mean)  # the search does not touch the statistics
    # the cosine of the chosen candidate, recomputed independently
    w = model.first_layer().weight
    model.train()
    with FrozenStats(model):
        fdg = finite_difference_grad(w, 0.1, loss_fn=lambda: F.cross_entropy(model(x), y))
        sg = autograd_grad(lambda: F.cross_entropy(model(x), y), w)
    assert cosine_similarity(sg, fdg) == pytest.approx(max(res.cosines), abs=1e-4)
    with pytest.raises(TypeError):
        m2 = _tiny()
        m2.set_surrogate(RectSurrogate())
        temperature_search(m2, x, y)


# ---------------------------------------------------------------------- TIT, registry
def test_tit_initialisation_copies_weights() -> None:
    src = _tiny(T=6)
    src.temperature = 1.4
    src.train()
    src(torch.rand(4, 1, 8, 8))  # non-trivial BN statistics
    dst = inherit(src, 2)
    assert dst.T == 2 and src.T == 6
    assert all(n.T == 2 for n in dst.neurons())
    s_sd, d_sd = src.state_dict(), dst.state_dict()
    assert s_sd.keys() == d_sd.keys()
    for k in s_sd:
        assert torch.equal(s_sd[k], d_sd[k]), k
    assert dst.temperature == 1.4
    with torch.no_grad():
        dst.first_layer().weight.add_(1.0)
    dst.temperature = 2.0
    assert not torch.equal(src.first_layer().weight, dst.first_layer().weight)
    assert src.temperature == 1.4


def test_registry_models() -> None:
    assert {"dspike-mnist-cnn", "dspike-resnet18"} <= set(list_models())
    torch.manual_seed(0)
    net = create_model("dspike-resnet18", T=2, num_classes=10)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len([c for c in convs if c.kernel_size == (3, 3)]) == 3 + 16  # stem + 8 blocks x 2
    assert 10e6 < sum(p.numel() for p in net.parameters()) < 12e6
    net.eval()
    with torch.no_grad():
        out = net(torch.rand(1, 3, 16, 16))
    assert out.shape == (1, 10)
    assert len(net.neurons()) == 3 + 16
