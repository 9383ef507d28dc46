"""Fixture writers shared by the tests of keras_taylor.data's modules (tests/test_data_*.py).

Every file-based route is exercised on tiny fixtures written into `tmp_path`; the optional
tests read the project's offline copies in ../shared/data when present.
"""

import gzip
import pathlib
import tarfile

import numpy as np

from keras_taylor.data import Dataset

# Label counts of the first 10,000 MNIST training images.
FIRST_10K_LABEL_COUNTS = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
SHARED_DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"
# CIFAR-10's class names in the standard label order.
CIFAR10_CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


# ---------------------------------------------------------------------------
# IDX files.

# The standard file names, as `load_dataset` documents them.
IDX_FILE_NAMES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def write_idx(path, array, compress: bool = True):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    opener = gzip.open if compress else open
    with opener(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def write_idx_split(directory, rng, split="train", count=7, image_shape=(28, 28), compress=True):
    """Writes one split's IDX pair; returns `(images, labels)`."""
    images_name, labels_name = IDX_FILE_NAMES[split]
    if not compress:
        images_name, labels_name = images_name[:-3], labels_name[:-3]
    images = rng.integers(0, 256, size=(count, *image_shape))
    labels = rng.integers(0, 10, size=count)
    write_idx(directory / images_name, images, compress)
    write_idx(directory / labels_name, labels, compress)
    return images.astype(np.uint8), labels


# ---------------------------------------------------------------------------
# Image folders and archives of them.

# Class folders are created in this (unsorted) order; their indices must follow sorted names.
FOLDER_CLASSES = ("cat", "airplane")


def write_image_folder(root, rng, image_format="PNG", splits=("train", "test"), per_class=3, shape=(32, 32, 3)):
    """Writes random `root/<split>/<class>/NNNN.<ext>`; returns {split: [(pixels, class name), ...]}.

    For lossy JPEG the pixels returned are PIL's decoding of the written file: the loader must
    decode exactly as PIL (libjpeg's accurate inverse DCT) does.
    """
    from PIL import Image

    suffix = ".png" if image_format == "PNG" else ".jpg"
    written = {}
    for split in splits:
        written[split] = []
        for class_name in FOLDER_CLASSES:
            folder = root / split / class_name
            folder.mkdir(parents=True)
            for index in range(per_class):
                path = folder / f"{index:04d}{suffix}"
                pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
                Image.fromarray(pixels).save(path, format=image_format)
                if image_format == "JPEG":
                    pixels = np.asarray(Image.open(path).convert("RGB"))
                written[split].append((pixels, class_name))
    return written


def make_archive(archive_path, source_root, arcname):
    with tarfile.open(archive_path, "w:gz") as tar:
        tar.add(source_root, arcname=arcname)


def assert_matches_written(dataset, written):
    """Every loaded (image, label) is a written image with its class's sorted index, and vice versa."""
    expected = {pixels.tobytes(): sorted(FOLDER_CLASSES).index(name) for pixels, name in written}
    loaded = {image.tobytes(): int(label) for image, label in zip(dataset.images, dataset.labels)}
    assert loaded == expected


def forbid(monkeypatch, module, attribute, what):
    """Makes `module.attribute` fail the test if called: the cache should have been used."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"{what} was called, but the cache should have been used")

    monkeypatch.setattr(module, attribute, refuse)


def image_folder_builder_module():
    import tensorflow_datasets as tfds

    return tfds.folder_dataset


# ---------------------------------------------------------------------------
# In-memory datasets.


def mnist_like(images, labels, num_classes=10):
    return Dataset("mnist", "train", images, labels, num_classes, source="test arrays")


def cifar_like(rng, count=6):
    images = rng.integers(0, 256, size=(count, 32, 32, 3), dtype=np.uint8)
    images[..., 0] //= 2  # Channels with different statistics.
    return Dataset("cifar10", "train", images, rng.integers(0, 10, size=count), 10, source="test arrays")
