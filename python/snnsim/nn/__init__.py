"""The torch building blocks of snnsim's spiking networks (layers below models and training).

* :mod:`snnsim.nn.dsr` — the DSR neuron (Meng et al., CVPR 2022): a forward that simulates the
  SNN step by step and a backward through the spike-representation mapping;
* :mod:`snnsim.nn.layers` — time-aware layers (conv, linear, batch norm over time, pools,
  flatten, dropout, the DSR neuron layer) and their ``Seq`` container;
* :mod:`snnsim.nn.net` — :class:`DSRNet`, the DSR network container (rate, per-step and
  chunked forms); :mod:`snnsim.nn.chunked` — the time-chunked rate forward;
* :mod:`snnsim.nn.dspike` — Dspike layers and :class:`DspikeNet` (Li et al., NeurIPS 2021);
  :mod:`snnsim.nn.surrogates` — surrogate gradients; :mod:`snnsim.nn.tdbn` — tdBN;
* :mod:`snnsim.nn.syncbn` — batch norm statistics over every process of a distributed run;
* :mod:`snnsim.nn.recurrent` — recurrent Dspike and DSR IF layers (one-step delayed spikes
  through recurrent weights).

Every neuron law comes from :mod:`snnsim.neurons` (docs/semantics.md §1). Named architectures
are in :mod:`snnsim.models`; the trainer, configurations and command line in
:mod:`snnsim.train`. Nothing here imports either.
"""

from .dspike import DspikeNet, DspikeNeuron
from .dsr import DSRNeuronConfig, dsr_defaults
from .layers import DSRNeuron, Seq
from .net import DSRNet
from .recurrent import RecurrentDspikeNeuron, RecurrentDSRNeuron

__all__ = [
    "DSRNeuron",
    "DSRNeuronConfig",
    "DSRNet",
    "DspikeNet",
    "DspikeNeuron",
    "RecurrentDSRNeuron",
    "RecurrentDspikeNeuron",
    "Seq",
    "dsr_defaults",
]
