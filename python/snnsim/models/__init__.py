"""Spiking network architectures by name (see :func:`create_model`).

Importing the architecture modules registers them (:func:`register`): DSR networks in
:mod:`snnsim.models.dsr_nets`, Dspike networks in :mod:`snnsim.models.dspike_nets`.
"""

from . import dspike_nets, dsr_nets
from .registry import create_model, list_models, register

__all__ = ["create_model", "dspike_nets", "dsr_nets", "list_models", "register"]
