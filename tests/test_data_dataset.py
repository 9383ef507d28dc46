"""keras_taylor.data.dataset: the named datasets' specs and the validated, read-only `Dataset`."""

import numpy as np
import pytest

from keras_taylor.data.dataset import DATASET_NAMES, DATASET_SPECS, LocalLayout

from data_fixtures import CIFAR10_CLASS_NAMES, mnist_like


def test_dataset_validates_and_freezes_its_arrays(rng):
    images = rng.integers(0, 256, size=(4, 28, 28), dtype=np.uint8)
    dataset = mnist_like(images, np.array([0, 1, 2, 3], dtype=np.uint8))
    assert dataset.labels.dtype == np.int64 and len(dataset) == 4
    with pytest.raises(ValueError, match="read-only"):
        dataset.images[0, 0, 0] = 1
    images[0, 0, 0] = 7  # The caller's array stays writable.
    with pytest.raises(ValueError, match="4 images but 3 labels"):
        mnist_like(images, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="images must be uint8"):
        mnist_like(images.astype(np.float32), np.array([0, 1, 2, 3]))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        mnist_like(images, np.array([0, 1, 2, 3]), num_classes=3)
    with pytest.raises(ValueError, match="labels must be integers"):
        mnist_like(images, np.array([0.0, 1.0, 2.0, 3.0]))


def test_specs_name_the_documented_datasets_layouts_and_classes():
    assert DATASET_NAMES == ("mnist", "fashion_mnist", "cifar10", "embedded_mnist")
    layouts = {name: spec.local_layout for name, spec in DATASET_SPECS.items()}
    assert layouts == {
        "mnist": LocalLayout.IDX,
        "fashion_mnist": LocalLayout.IDX,
        "cifar10": LocalLayout.IMAGE_FOLDER,
        "embedded_mnist": LocalLayout.EMBEDDED,
    }
    assert DATASET_SPECS["cifar10"].class_names == CIFAR10_CLASS_NAMES
    assert DATASET_SPECS["cifar10"].image_shape == (32, 32, 3)
    for name in ("mnist", "fashion_mnist", "embedded_mnist"):
        assert DATASET_SPECS[name].image_shape == (28, 28) and len(DATASET_SPECS[name].class_names) == 10
