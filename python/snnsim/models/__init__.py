"""Spiking network architectures by name (see :func:`create_model`)."""

from .registry import create_model, list_models, register

__all__ = ["create_model", "list_models", "register"]
from . import (
    dspike_nets,  # noqa: E402,F401  (registers the Dspike architectures)
    dsr_nets,  # noqa: E402,F401  (registers the DSR architectures)
)
