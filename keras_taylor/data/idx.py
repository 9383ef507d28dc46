"""IDX files, the format MNIST and Fashion-MNIST ship in: reading one, and finding a split's pair."""

import gzip
import os
import pathlib
import zlib

import numpy as np

from keras_taylor.data.dataset import Dataset, DatasetSpec

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Reads an IDX file (gzipped or not), the format MNIST-style datasets ship in.

    Args:
        path: the file; names ending in `.gz` are decompressed.

    Returns:
        The uint8 array, shaped as the file's header says.

    Raises:
        ValueError: naming the file if it is not valid gzip, or its header or size is wrong.
    """
    path = pathlib.Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            payload = handle.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise ValueError(f"{path} is not a complete gzip file ({error}).") from error
    if len(payload) < 4 or payload[:2] != b"\x00\x00" or payload[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (bad magic number).")
    rank = payload[3]
    header_size = 4 + 4 * rank
    if len(payload) < header_size:
        raise ValueError(f"{path} ends inside its header ({len(payload)} bytes for a rank-{rank} header).")
    shape = tuple(int.from_bytes(payload[4 + 4 * i: 8 + 4 * i], "big") for i in range(rank))
    body = np.frombuffer(payload, dtype=np.uint8, offset=header_size)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"{path} holds {body.size} bytes of data, its header says {shape}.")
    return body.reshape(shape)


def _find_idx_file(directory: pathlib.Path, gz_name: str) -> pathlib.Path:
    candidates = (directory / gz_name, directory / gz_name.removesuffix(".gz"))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"Neither {candidates[0].name} nor {candidates[1].name} is in {directory}.")


def _read_idx_split(directory: pathlib.Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    if split not in _IDX_FILES:
        raise ValueError(f"split must be 'train' or 'test'. Received: split={split!r}")
    if not directory.exists():
        raise FileNotFoundError(f"IDX directory {directory} does not exist.")
    if not directory.is_dir():
        raise NotADirectoryError(f"{directory} is not a directory (expected one holding the IDX files).")
    images_path, labels_path = (_find_idx_file(directory, name) for name in _IDX_FILES[split])
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3:
        raise ValueError(f"{images_path} holds an array of shape {images.shape}, not images [N, H, W].")
    if labels.ndim != 1:
        raise ValueError(f"{labels_path} holds an array of shape {labels.shape}, not labels [N].")
    if len(images) != len(labels):
        raise ValueError(
            f"{directory}: {len(images)} images but {len(labels)} labels in the {split} split."
        )
    return images, labels


def load_mnist_idx(directory: str | os.PathLike, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """An MNIST-style split from a directory of the standard IDX files (gzipped or not).

    Args:
        directory: holds `train-images-idx3-ubyte.gz` etc. (see `load_dataset`).
        split: "train" or "test".

    Returns:
        `(images uint8 [N, 28, 28], labels uint8 [N])`.

    Raises:
        ValueError: for an unknown split, malformed files, or differing counts.
        FileNotFoundError: naming a missing directory or file.
    """
    return _read_idx_split(pathlib.Path(directory), split)


def load_idx_dataset(name: str, split: str, directory: pathlib.Path, spec: DatasetSpec) -> Dataset:
    """`load_dataset`'s IDX route: one split of `name` from a directory of IDX files.

    Args:
        name: "mnist" or "fashion_mnist".
        split: "train" or "test".
        directory: holds the split's two IDX files (see `load_dataset`).
        spec: `name`'s entry of `DATASET_SPECS`.

    Returns:
        The split, examples in the files' order.

    Raises:
        ValueError: for malformed files, differing counts, images not of `spec.image_shape`,
            or labels out of range.
        FileNotFoundError: naming a missing directory or file.
    """
    images, labels = _read_idx_split(directory, split)
    if images.shape[1:] != spec.image_shape:
        raise ValueError(
            f"{name} images are {spec.image_shape}, but the {split} images in {directory} are {images.shape[1:]}."
        )
    return spec.dataset(name, split, images, labels, f"IDX files in {directory}")
