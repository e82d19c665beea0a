"""DSR training (Meng et al., CVPR 2022): spiking layers whose forward simulates the SNN and
whose backward differentiates the spike representation; models, trainer, configs.

``python -m snnsim.train --config NAME [--resume] [--epochs N] [--out DIR]`` trains a named
configuration (see :mod:`snnsim.train.configs`).
"""

from .dsr import DSRNeuronConfig, dsr_defaults
from .layers import DSRNeuron, Seq
from .net import DSRNet

__all__ = ["DSRNeuronConfig", "DSRNeuron", "DSRNet", "Seq", "dsr_defaults"]
