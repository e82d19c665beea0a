"""Model registry: networks by name, built with keyword overrides.

@register("mlp")
def mlp(in_features=784, hidden=(800, 800), num_classes=10, **neuron): ...

model = create_model("mlp", hidden=(100,))
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

import torch

_REGISTRY: dict[str, Callable[..., torch.nn.Module]] = {}


def register(
    name: str,
) -> Callable[[Callable[..., torch.nn.Module]], Callable[..., torch.nn.Module]]:
    """Decorator adding a model factory under ``name`` (names are unique)."""

    def deco(fn: Callable[..., torch.nn.Module]) -> Callable[..., torch.nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model name {name!r} is already registered")
        _REGISTRY[name] = fn
        return fn

    return deco


def create_model(name: str, **overrides: Any) -> torch.nn.Module:
    """Build the registered model ``name``; keyword arguments override its defaults."""
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; registered: {sorted(_REGISTRY)}") from None
    return factory(**overrides)


def list_models() -> list[str]:
    """Names of the registered architectures, sorted."""
    return sorted(_REGISTRY)


def _factory(name: str) -> Callable[..., torch.nn.Module]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; registered: {sorted(_REGISTRY)}") from None


def accepts(name: str, param: str) -> bool:
    """Whether the factory of model ``name`` takes the keyword argument ``param``."""
    sig = inspect.signature(_factory(name))
    return param in sig.parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()
    )


def parameter_count(name: str, **overrides: Any) -> int:
    """Number of parameters (trainable or not) of ``create_model(name, **overrides)``, built
    on torch's ``meta`` device so no memory is allocated for the weights."""
    with torch.device("meta"):
        model = create_model(name, **overrides)
    return sum(p.numel() for p in model.parameters())
