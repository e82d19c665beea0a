"""Engines of the side-by-side inference benchmark: each runs a :class:`~inference_nets.Network`
the way its library is normally used, on the same weights, thresholds and inputs.

An engine is built for one network and batch size (``make_engine``), prepares an input batch in
its own layout outside the timed region (``prepare``), runs one whole inference (state reset,
all ``T`` steps, output spike counts) in ``run`` (the timed call) and records the spikes of
every IF layer as bool ``[T, B, ...]`` arrays in ``record`` (forward hooks for the torch-based
engines, ``record=`` for snnsim), which :func:`spike_mismatch` compares with the reference.

With a static input, every torch-based engine computes the first (analog) layer once per
inference and feeds its output at every step, as snnsim does.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

import numpy as np
import torch
from inference_nets import (
    IF,
    AvgPool,
    Block,
    Conv,
    Flatten,
    Layer,
    Linear,
    Network,
    float_weight,
    to_graph,
)
from torch import nn

PEERS = ("torch_step", "torch_multistep", "spikingjelly", "snntorch", "norse", "sinabs")
SNNSIM = ("snnsim_float32", "snnsim_int8")
ENGINES = PEERS + SNNSIM

LIBRARY = {
    "torch_step": "torch",
    "torch_multistep": "torch",
    "spikingjelly": "spikingjelly",
    "snntorch": "snntorch",
    "norse": "norse",
    "sinabs": "sinabs",
    "snnsim_float32": "snnsim",
    "snnsim_int8": "snnsim",
}


class Unsupported(Exception):
    """The engine cannot run this workload (the message says why)."""


# ---------------------------------------------------------------------- plain torch modules
def torch_linear(layer: Linear) -> nn.Linear:
    m = nn.Linear(layer.weight.shape[1], layer.weight.shape[0], bias=False)
    m.weight.data.copy_(float_weight(layer))
    return m


def torch_conv(layer: Conv) -> nn.Conv2d:
    o, i, kh, kw = layer.weight.shape
    m = nn.Conv2d(i, o, (kh, kw), stride=layer.stride, padding=layer.padding, bias=False)
    m.weight.data.copy_(float_weight(layer))
    return m


def torch_weighted(layer: Linear | Conv) -> nn.Module:
    return torch_linear(layer) if isinstance(layer, Linear) else torch_conv(layer)


class StepIF(nn.Module):
    """IF for one step ``[B, ...]``: ``U = V + x``, spike where ``U >= theta``, subtract theta."""

    def __init__(self, theta: float) -> None:
        super().__init__()
        self.theta = theta
        self.v: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = x if self.v is None else self.v + x
        s = (u >= self.theta).to(x.dtype)
        self.v = u - s * self.theta
        return s


class SeqIF(nn.Module):
    """IF over a whole sequence ``[T, B, ...]``, stepped over T."""

    def __init__(self, theta: float) -> None:
        super().__init__()
        self.theta = theta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = torch.zeros_like(x[0])
        out = torch.empty(x.shape, dtype=x.dtype)
        for t in range(x.shape[0]):
            u = v + x[t]
            s = (u >= self.theta).to(x.dtype)
            out[t] = s
            v = u - s * self.theta
        return out


class SeqWrap(nn.Module):
    """Apply a stateless module to ``[T, B, ...]`` as one ``[T*B, ...]`` batch."""

    def __init__(self, m: nn.Module) -> None:
        super().__init__()
        self.m = m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.m(x.flatten(0, 1))
        return y.view(x.shape[0], x.shape[1], *y.shape[1:])


class Residual(nn.Module):
    """Pre-activation block: ``s = sn1(x)``; ``main(s) + shortcut(s)`` (identity if None)."""

    def __init__(self, sn1: nn.Module, main: nn.Module, short: nn.Module | None) -> None:
        super().__init__()
        self.sn1, self.main, self.short = sn1, main, short

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.sn1(x)
        return self.main(s) + (s if self.short is None else self.short(s))


# ---------------------------------------------------------------------- engine base
class Engine:
    """One library's way of running a network; subclasses fill in the library specifics."""

    name = ""
    peer = True
    law = "subtract"  # the IF reset this engine runs (see inference_nets.evaluate)
    note = ""
    modules: tuple[str, ...] = ("torch",)  # what the engine imports (memory baseline)

    def __init__(self, net: Network, batch: int) -> None:
        self.net, self.batch, self.steps = net, batch, net.steps
        self.static = net.input_kind == "static"
        self.threads = 1

    def set_threads(self, n: int) -> None:
        self.threads = n
        torch.set_num_threads(n)

    def prepare(self, x: np.ndarray) -> Any:
        raise NotImplementedError

    def run(self, xin: Any) -> Any:
        raise NotImplementedError

    def record(self, xin: Any) -> dict[str, np.ndarray]:
        raise NotImplementedError


class TorchEngine(Engine):
    """A torch-based engine built from per-layer modules; ``layout`` says how its IF modules'
    outputs are laid out: ``"step"`` (one step ``[B, ...]`` per call), ``"tb"`` (``[T, B, ...]``)
    or ``"bt"`` (``[B*T, ...]``, batch-major)."""

    layout = "step"

    def __init__(self, net: Network, batch: int) -> None:
        super().__init__(net, batch)
        self.neurons: dict[str, nn.Module] = {}
        layers = list(net.layers)
        self.pre: nn.Module | None = None
        if self.static:  # the analog first layer: once per inference
            first = layers.pop(0)
            if not isinstance(first, (Linear, Conv)):
                raise Unsupported("a static input must feed a linear or conv layer first")
            self.pre = torch_weighted(first)
        self.body = self.container([self.module(layer) for layer in layers])
        self.body.eval()

    # library specifics
    def container(self, mods: list[nn.Module]) -> nn.Module:
        return nn.Sequential(*mods)

    def weighted(self, layer: Linear | Conv) -> nn.Module:
        return torch_weighted(layer)

    def pool(self, layer: AvgPool) -> nn.Module:
        return nn.AvgPool2d(layer.k)

    def flatten(self, layer: Flatten) -> nn.Module:
        return nn.Flatten(1)

    def neuron(self, layer: IF) -> nn.Module:
        raise NotImplementedError

    def block(self, b: Block) -> nn.Module:
        main = self.container([self.weighted(b.conv1), self._if(b.sn2), self.weighted(b.conv2)])
        short = None if b.short is None else self.weighted(b.short)
        return Residual(self._if(b.sn1), main, short)

    def reset(self) -> None:
        """Reset the neuron state before an inference (inside the timed call)."""

    def forward(self, xin: Any) -> torch.Tensor:
        raise NotImplementedError

    # common machinery
    def _if(self, layer: IF) -> nn.Module:
        m = self.neuron(layer)
        self.neurons[layer.name] = m
        return m

    def module(self, layer: Layer) -> nn.Module:
        if isinstance(layer, (Linear, Conv)):
            return self.weighted(layer)
        if isinstance(layer, AvgPool):
            return self.pool(layer)
        if isinstance(layer, Flatten):
            return self.flatten(layer)
        if isinstance(layer, IF):
            return self._if(layer)
        return self.block(layer)

    def prepare(self, x: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(x)
        return t if self.static else t.transpose(0, 1).contiguous()  # [T, B, ...]

    def run(self, xin: Any) -> torch.Tensor:
        with torch.no_grad():
            self.reset()
            return self.forward(xin)

    def _static_seq(self, xin: torch.Tensor) -> torch.Tensor:
        assert self.pre is not None
        cur = self.pre(xin)
        return cur.unsqueeze(0).expand(self.steps, *cur.shape)

    def record(self, xin: Any) -> dict[str, np.ndarray]:
        seen: dict[str, list[torch.Tensor]] = {k: [] for k in self.neurons}

        def hook(name: str) -> Callable[..., None]:
            def fn(_m: nn.Module, _inp: Any, out: Any) -> None:
                seen[name].append((out[0] if isinstance(out, tuple) else out).detach().clone())

            return fn

        handles = [m.register_forward_hook(hook(k)) for k, m in self.neurons.items()]
        try:
            self.run(xin)
        finally:
            for h in handles:
                h.remove()
        return {k: self._layout(v).numpy() != 0 for k, v in seen.items()}

    def _layout(self, outs: list[torch.Tensor]) -> torch.Tensor:
        if self.layout == "step":
            return torch.stack(outs)
        (out,) = outs
        if self.layout == "tb":
            return out
        return out.reshape(self.batch, self.steps, *out.shape[1:]).transpose(0, 1)


class PerStepEngine(TorchEngine):
    """Runs the network one step at a time (``[B, ...]`` per call)."""

    def forward(self, xin: torch.Tensor) -> torch.Tensor:
        acc = None
        cur = self.pre(xin) if self.pre is not None else None
        for t in range(self.steps):
            out = self.body(cur if cur is not None else xin[t])
            acc = out if acc is None else acc + out
        assert acc is not None
        return acc


# ---------------------------------------------------------------------- the engines
class TorchStep(PerStepEngine):
    name = "torch_step"
    note = "plain torch per-step loop (nn.Linear/Conv2d/AvgPool2d, IF by hand), one step at a time"

    def neuron(self, layer: IF) -> nn.Module:
        return StepIF(layer.theta_value)

    def reset(self) -> None:
        for m in self.neurons.values():
            m.v = None  # type: ignore[assignment]


class TorchMultiStep(TorchEngine):
    name = "torch_multistep"
    note = "plain torch multi-step loop: each layer on all T*B at once, the IF stepped over T"
    layout = "tb"

    def weighted(self, layer: Linear | Conv) -> nn.Module:
        return SeqWrap(torch_weighted(layer))

    def pool(self, layer: AvgPool) -> nn.Module:
        return SeqWrap(nn.AvgPool2d(layer.k))

    def flatten(self, layer: Flatten) -> nn.Module:
        return SeqWrap(nn.Flatten(1))

    def neuron(self, layer: IF) -> nn.Module:
        return SeqIF(layer.theta_value)

    def forward(self, xin: torch.Tensor) -> torch.Tensor:
        seq = self._static_seq(xin) if self.static else xin
        return self.body(seq).sum(0)


class SpikingJelly(TorchEngine):
    name = "spikingjelly"
    modules = tuple(f"spikingjelly.activation_based.{m}" for m in ("functional", "layer", "neuron"))
    layout = "tb"
    note = (
        "SpikingJelly multi-step (step_mode='m'): layer.Linear/Conv2d/AvgPool2d/Flatten and "
        "neuron.IFNode(v_threshold=theta, v_reset=None) (fires at v >= theta, subtracts theta); "
        "functional.reset_net before each inference"
    )

    def __init__(self, net: Network, batch: int) -> None:
        from spikingjelly.activation_based import functional, layer, neuron

        self._functional, self._layer, self._neuron = functional, layer, neuron
        super().__init__(net, batch)

    def weighted(self, layer: Linear | Conv) -> nn.Module:
        L = self._layer
        if isinstance(layer, Linear):
            m = L.Linear(layer.weight.shape[1], layer.weight.shape[0], bias=False, step_mode="m")
        else:
            o, i, kh, kw = layer.weight.shape
            m = L.Conv2d(
                i,
                o,
                (kh, kw),
                stride=layer.stride,
                padding=layer.padding,
                bias=False,
                step_mode="m",
            )
        m.weight.data.copy_(float_weight(layer))
        return m

    def pool(self, layer: AvgPool) -> nn.Module:
        return self._layer.AvgPool2d(layer.k, step_mode="m")

    def flatten(self, layer: Flatten) -> nn.Module:
        return self._layer.Flatten(step_mode="m")

    def neuron(self, layer: IF) -> nn.Module:
        return self._neuron.IFNode(v_threshold=layer.theta_value, v_reset=None, step_mode="m")

    def reset(self) -> None:
        self._functional.reset_net(self.body)

    def forward(self, xin: torch.Tensor) -> torch.Tensor:
        seq = self._static_seq(xin) if self.static else xin
        return self.body(seq).sum(0)


class SnnTorch(PerStepEngine):
    name = "snntorch"
    modules = ("snntorch",)
    note = (
        "snnTorch per step: snn.Leaky(beta=1, threshold=theta, reset_mechanism='subtract', "
        "init_hidden=True) in nn.Sequential. Leaky fires at U > theta (strict); on the grid "
        "2^-q of its input U >= theta is U + 2^-(q+1) > theta, so each membrane starts at half "
        "a grid unit (set at the reset before each inference; the subtractive reset keeps the "
        "offset, every value stays exact)"
    )

    def __init__(self, net: Network, batch: int) -> None:
        import snntorch

        self._snn = snntorch
        self._layers: dict[str, IF] = {}
        super().__init__(net, batch)

    def neuron(self, layer: IF) -> nn.Module:
        self._layers[layer.name] = layer
        return self._snn.Leaky(
            beta=1.0, threshold=layer.theta_value, reset_mechanism="subtract", init_hidden=True
        )

    def reset(self) -> None:
        for name, m in self.neurons.items():
            lay = self._layers[name]
            m.mem = torch.full((self.batch, *lay.shape), lay.half_unit)


class Norse(PerStepEngine):
    name = "norse"
    modules = ("norse.torch",)
    law = "zero"
    note = (
        "Norse per step: IAFCell in SequentialState, state carried between steps. Norse 1.1.0 "
        "has no IF neuron with subtractive reset (IAF resets to v_reset; reset_subtract exists "
        "only for the leaky LIFBox), so this row runs IF with reset to zero; IAF fires at "
        "v > v_th and v_reset = half a grid unit (also its initial state) makes that U >= theta. "
        "Spikes are checked against the reference with the same reset-to-zero law, and the "
        "row's SOPs and firing rates are that law's"
    )

    def __init__(self, net: Network, batch: int) -> None:
        import norse.torch as nt

        self._nt = nt
        super().__init__(net, batch)

    def container(self, mods: list[nn.Module]) -> nn.Module:
        return self._nt.SequentialState(*mods)

    def neuron(self, layer: IF) -> nn.Module:
        p = self._nt.IAFParameters(
            v_th=torch.tensor(layer.theta_value), v_reset=torch.tensor(layer.half_unit)
        )
        return self._nt.IAFCell(p)

    def block(self, b: Block) -> nn.Module:
        short = None if b.short is None else self.weighted(b.short)
        return NorseResidual(
            self._if(b.sn1), self.weighted(b.conv1), self._if(b.sn2), self.weighted(b.conv2), short
        )

    def forward(self, xin: torch.Tensor) -> torch.Tensor:
        acc, state = None, None
        cur = self.pre(xin) if self.pre is not None else None
        for t in range(self.steps):
            out, state = self.body(cur if cur is not None else xin[t], state)
            acc = out if acc is None else acc + out
        assert acc is not None
        return acc


class NorseResidual(nn.Module):
    """The pre-activation block as a Norse stateful module (``forward(x, state)``)."""

    def __init__(
        self, sn1: nn.Module, conv1: nn.Module, sn2: nn.Module, conv2: nn.Module, short: Any
    ) -> None:
        super().__init__()
        self.sn1, self.conv1, self.sn2, self.conv2, self.short = sn1, conv1, sn2, conv2, short

    def forward(self, x: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        st1, st2 = (None, None) if state is None else state
        s, st1 = self.sn1(x, st1)
        y, st2 = self.sn2(self.conv1(s), st2)
        y = self.conv2(y)
        return y + (s if self.short is None else self.short(s)), (st1, st2)


class Sinabs(TorchEngine):
    name = "sinabs"
    modules = ("sinabs", "sinabs.layers", "sinabs.activation")
    layout = "bt"
    note = (
        "Sinabs: nn layers and layers.IAFSqueeze(spike_threshold=theta, spike_fn=SingleSpike, "
        "reset_fn=MembraneSubtract(), min_v_mem=None) on [B*T, ...] (fires at v >= theta, "
        "subtracts theta); sinabs.reset_states before each inference"
    )

    def __init__(self, net: Network, batch: int) -> None:
        import sinabs
        import sinabs.activation as sa
        import sinabs.layers as sl

        self._sinabs, self._sa, self._sl = sinabs, sa, sl
        super().__init__(net, batch)

    def neuron(self, layer: IF) -> nn.Module:
        return self._sl.IAFSqueeze(
            batch_size=self.batch,
            spike_threshold=torch.tensor(layer.theta_value),
            spike_fn=self._sa.SingleSpike,
            reset_fn=self._sa.MembraneSubtract(),
            min_v_mem=None,
        )

    def prepare(self, x: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(x)
        return t if self.static else t.reshape(-1, *t.shape[2:])  # [B*T, ...], batch-major

    def reset(self) -> None:
        self._sinabs.reset_states(self.body)

    def forward(self, xin: torch.Tensor) -> torch.Tensor:
        if self.static:
            assert self.pre is not None
            cur = self.pre(xin)
            seq = cur.unsqueeze(1).expand(self.batch, self.steps, *cur.shape[1:])
            xin = seq.reshape(-1, *cur.shape[1:])
        out = self.body(xin)
        return out.reshape(self.batch, self.steps, -1).sum(1)


class Snnsim(Engine):
    """snnsim through the public ``snnsim.run`` on a model built with ``snnsim.Graph``."""

    peer = False
    precision = "float32"
    modules = ("snnsim", "snnsim._core")

    def __init__(self, net: Network, batch: int) -> None:
        super().__init__(net, batch)
        import snnsim

        self._snnsim = snnsim
        try:
            graph = to_graph(net, self.precision)
        except snnsim.ModelError as exc:
            raise Unsupported(f"snnsim cannot express this network: {exc}") from exc
        self.model = snnsim.Model.from_graph(graph)
        self.names = [n.name for n in net.neurons()]
        self.last_sops_per_sample = float("nan")

    def set_threads(self, n: int) -> None:
        self.threads = n

    def prepare(self, x: np.ndarray) -> np.ndarray:
        if self.static or self.precision == "float32":
            return np.ascontiguousarray(x, dtype=np.float32)
        return np.ascontiguousarray(x, dtype=np.int32)  # event counts for the int model

    def _run(self, xin: np.ndarray, record: list[str]) -> Any:
        steps = self.steps if self.static else None
        return self._snnsim.run(self.model, xin, steps=steps, record=record, threads=self.threads)

    def run(self, xin: np.ndarray) -> np.ndarray:
        return self._run(xin, []).output

    def record(self, xin: np.ndarray) -> dict[str, np.ndarray]:
        res = self._run(xin, self.names)
        self.last_sops_per_sample = float(res.counts.sops.sum()) / res.batch_size
        return {k: np.swapaxes(v, 0, 1) != 0 for k, v in res.record.items()}


class SnnsimFloat32(Snnsim):
    name = "snnsim_float32"
    note = "snnsim.run on a float32 snnsim.Graph (dsr_if, fire = theta), Python API included"


class SnnsimInt8(Snnsim):
    name = "snnsim_int8"
    precision = "int"
    note = (
        "snnsim.run on the int export of the same network (int8 weights, integer thresholds, "
        "sum pools with 1/k^2 folded into the thresholds), Python API included"
    )


_CLASSES: dict[str, type[Engine]] = {
    c.name: c
    for c in (TorchStep, TorchMultiStep, SpikingJelly, SnnTorch, Norse, Sinabs)
    + (SnnsimFloat32, SnnsimInt8)
}


def make_engine(name: str, net: Network, batch: int) -> Engine:
    """Build engine ``name`` for ``net`` at ``batch``; ``Unsupported`` if it cannot run it,
    ``ImportError`` if its library is not installed."""
    if name not in _CLASSES:
        raise ValueError(f"engine must be one of {ENGINES}, got {name!r}")
    return _CLASSES[name](net, batch)


def engine_class(name: str) -> type[Engine]:
    return _CLASSES[name]


def available(name: str) -> bool:
    """Whether the library of engine ``name`` can be imported."""
    try:
        importlib.import_module(LIBRARY[name])
    except ImportError:
        return False
    return True


def spike_mismatch(
    expected: dict[str, torch.Tensor], got: dict[str, np.ndarray], engine: str
) -> str | None:
    """None if ``got`` holds exactly the spikes of ``expected`` for every IF layer, else a
    message naming the first differing layer, how many spikes differ and where first."""
    for name, exp in expected.items():
        if name not in got:
            return f"{engine}: no spikes recorded for layer {name!r}"
        e, g = exp.numpy(), np.asarray(got[name])
        if e.shape != g.shape:
            return (
                f"{engine}: layer {name!r} spikes have shape {list(g.shape)}, "
                f"expected {list(e.shape)}"
            )
        diff = e != g
        if diff.any():
            first = tuple(int(i) for i in np.argwhere(diff)[0])
            return (
                f"{engine}: spike mismatch in layer {name!r}: {int(diff.sum())} of {e.size} "
                f"differ (expected {int(e.sum())} spikes, got {int(g.sum())}); first at "
                f"[t, b, ...] = {list(first)}"
            )
    return None
