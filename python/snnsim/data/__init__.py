"""Dataset readers for snnsim: static images (MNIST-5k, digits, CIFAR) and event recordings
(N-MNIST, DVS-CIFAR10, the Heidelberg SHD/SSC audio spikes, and a SYNTHETIC N-MNIST-like
generator).

Images are float32 channels-first arrays in [0, 1] (CIFAR: uint8, see
:func:`cifar_to_float32`); events are structured arrays with fields x, y, p (int16, p = 1 for
ON) and t (int64 microseconds), see :mod:`snnsim.data.event_arrays`. Errors about files and
their contents are :class:`DataFormatError` (a ``ValueError``) naming the path and field.
"""

from .aedat import (
    decode_dvs128,
    encode_dvs128,
    read_aedat,
    read_aedat_raw,
    split_header,
    write_aedat,
)
from .cifar import (
    cifar10_label_names,
    cifar100_label_names,
    cifar_datasets,
    cifar_to_float32,
    load_cifar10,
    load_cifar100,
)
from .digits import digits_datasets, digits_split_indices, load_digits_all, load_digits_split
from .dvs_cifar10 import (
    DVSCIFAR10Frames,
    count_frames,
    dvs_cifar10_events_dataset,
    dvs_cifar10_frames_dataset,
    dvs_cifar10_split,
    events_to_frames,
    list_dvs_cifar10_files,
    read_dvs_cifar10_frames,
    resize_frames,
)
from .errors import DataFormatError
from .event_arrays import (
    EVENT_DTYPE,
    as_events,
    concat_events,
    empty_events,
    make_events,
    validate_events,
)
from .event_dataset import EventDataset, EventFileDataset, collate_events
from .mnist5k import load_mnist5k, load_mnist5k_split, mnist5k_datasets, mnist5k_split_indices
from .nmnist import (
    decode_nmnist_bytes,
    encode_nmnist_events,
    list_nmnist_files,
    nmnist_dataset,
    read_nmnist_file,
    write_nmnist_file,
)
from .shd import SHD_DTYPE, SHD_SENSOR_SIZE, read_shd, write_shd
from .sweeps import make_sweeps
from .synthetic_nmnist import (
    SyntheticNMNIST,
    SyntheticNMNISTConfig,
    save_synthetic_nmnist,
    synthesize_events,
    synthetic_nmnist,
)

__all__ = [
    "SHD_DTYPE",
    "SHD_SENSOR_SIZE",
    "read_shd",
    "write_shd",
    "make_sweeps",
    "DVSCIFAR10Frames",
    "DataFormatError",
    "EVENT_DTYPE",
    "EventDataset",
    "EventFileDataset",
    "SyntheticNMNIST",
    "SyntheticNMNISTConfig",
    "as_events",
    "cifar100_label_names",
    "cifar10_label_names",
    "cifar_datasets",
    "cifar_to_float32",
    "collate_events",
    "concat_events",
    "count_frames",
    "decode_dvs128",
    "decode_nmnist_bytes",
    "digits_datasets",
    "digits_split_indices",
    "dvs_cifar10_events_dataset",
    "dvs_cifar10_frames_dataset",
    "dvs_cifar10_split",
    "empty_events",
    "encode_dvs128",
    "encode_nmnist_events",
    "events_to_frames",
    "list_dvs_cifar10_files",
    "list_nmnist_files",
    "load_cifar10",
    "load_cifar100",
    "load_digits_all",
    "load_digits_split",
    "load_mnist5k",
    "load_mnist5k_split",
    "make_events",
    "mnist5k_datasets",
    "mnist5k_split_indices",
    "nmnist_dataset",
    "read_aedat",
    "read_aedat_raw",
    "read_dvs_cifar10_frames",
    "read_nmnist_file",
    "resize_frames",
    "save_synthetic_nmnist",
    "split_header",
    "synthesize_events",
    "synthetic_nmnist",
    "validate_events",
    "write_aedat",
    "write_nmnist_file",
]
