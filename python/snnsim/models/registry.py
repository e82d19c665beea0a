"""Model registry: networks by name, built with keyword overrides.

@register("mlp")
def mlp(in_features=784, hidden=(800, 800), num_classes=10, **neuron): ...

model = create_model("mlp", hidden=(100,))
"""

from __future__ import annotations

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
    return sorted(_REGISTRY)
