"""keras_taylor.data.tfds: the tensorflow-datasets route, on a stand-in for `tfds.load` (no downloads here)."""

import numpy as np
import pytest

from keras_taylor.data import load_dataset
from keras_taylor.data.tfds import DatasetUnavailableError

TFDS_CASES = {
    "mnist": ("mnist", "train", (5, 28, 28, 1), (5, 28, 28)),
    "fashion_mnist_test": ("fashion_mnist", "test", (4, 28, 28, 1), (4, 28, 28)),
    "cifar10": ("cifar10", "test", (3, 32, 32, 3), (3, 32, 32, 3)),
}


@pytest.mark.parametrize("name, split, tfds_shape, shape", TFDS_CASES.values(), ids=TFDS_CASES.keys())
def test_tfds_route_asks_for_the_split_and_converts(monkeypatch, rng, name, split, tfds_shape, shape):
    import tensorflow as tf
    import tensorflow_datasets as tfds

    images = rng.integers(0, 256, size=tfds_shape, dtype=np.uint8)
    labels = rng.integers(0, 10, size=tfds_shape[0])
    calls = []

    def fake_load(*args, **kwargs):
        calls.append((args, kwargs))
        return tf.constant(images), tf.constant(labels, dtype=tf.int64)

    monkeypatch.setattr(tfds, "load", fake_load)
    dataset = load_dataset(name, split)
    assert calls == [((name,), {"split": split, "batch_size": -1, "as_supervised": True})]
    assert dataset.images.shape == shape and dataset.images.dtype == np.uint8
    np.testing.assert_array_equal(dataset.images, images.reshape(shape))
    np.testing.assert_array_equal(dataset.labels, labels)
    assert dataset.labels.dtype == np.int64
    assert dataset.source == f"tensorflow-datasets {name} {split}"
    assert dataset.num_classes == 10 and len(dataset.class_names) == 10


def test_tfds_route_explains_what_to_do_offline(monkeypatch):
    import tensorflow_datasets as tfds

    def offline_load(*args, **kwargs):
        raise ConnectionError("Failed to resolve 'storage.googleapis.com'")

    monkeypatch.setattr(tfds, "load", offline_load)
    with pytest.raises(DatasetUnavailableError) as caught:
        load_dataset("cifar10")
    message = str(caught.value)
    assert "'cifar10'" in message and "Failed to resolve" in message
    assert "data_dir=" in message and "'embedded_mnist'" in message
    assert isinstance(caught.value.__cause__, ConnectionError)
