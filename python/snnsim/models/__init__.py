"""Spiking network architectures by name (see :func:`create_model`)."""

from .registry import create_model, list_models, register

__all__ = ["create_model", "list_models", "register"]
