"""Training: the trainer (:mod:`snnsim.train.trainer`), the named configurations
(:mod:`snnsim.train.configs`), checkpoints, distributed training, the Dspike temperature
search and Time Inheritance Training (:mod:`snnsim.train.dspike`) and the command line.

``python -m snnsim.train --config NAME [--resume] [--epochs N] [--out DIR]`` trains a named
configuration (see :mod:`snnsim.train.configs`). The networks come from :mod:`snnsim.models`,
built from the layers of :mod:`snnsim.nn`; imports go one way: ``nn`` -> ``models`` ->
``train``.
"""
