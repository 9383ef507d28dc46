"""keras_taylor.data.idx: IDX files (MNIST, Fashion-MNIST), read alone or as `load_dataset`'s IDX route."""

import gzip

import numpy as np
import pytest

from keras_taylor.data import load_dataset
from keras_taylor.data.idx import load_mnist_idx, read_idx

from data_fixtures import FIRST_10K_LABEL_COUNTS, SHARED_DATA, write_idx, write_idx_split


def test_idx_loader_reads_what_was_written(tmp_path, rng):
    images, labels = write_idx_split(tmp_path, rng, "test")
    loaded_images, loaded_labels = load_mnist_idx(tmp_path, "test")
    np.testing.assert_array_equal(loaded_images, images)
    np.testing.assert_array_equal(loaded_labels, labels)


def test_idx_loader_names_a_truncated_file(tmp_path, rng):
    path = tmp_path / "broken.gz"
    write_idx(path, rng.integers(0, 256, size=(3, 4)))
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
    images, labels = write_idx_split(tmp_path, rng, split, count=9, compress=compress)
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
    write_idx_split(tmp_path, rng, "train")
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
    write_idx_split(tmp_path, rng, "train")
    with gzip.open(tmp_path / "train-images-idx3-ubyte.gz", "wb") as handle:
        handle.write(b"\x00\x00\x0d\x03" + bytes(12))  # Type code 0x0D: float, not unsigned byte.
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz is not an unsigned-byte IDX file"):
        load_dataset("mnist", data_dir=tmp_path)


def test_idx_route_rejects_a_header_cut_short_and_a_broken_gzip(tmp_path, rng):
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
    write_idx_split(tmp_path, rng, "train", count=7)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", rng.integers(0, 10, size=6))
    with pytest.raises(ValueError, match="7 images but 6 labels in the train split"):
        load_dataset("mnist", data_dir=tmp_path)
    write_idx_split(tmp_path, rng, "test", image_shape=(20, 20))
    with pytest.raises(ValueError, match=r"mnist images are \(28, 28\).*\(20, 20\)"):
        load_dataset("mnist", "test", data_dir=tmp_path)


def test_idx_route_rejects_labels_out_of_range(tmp_path, rng):
    write_idx_split(tmp_path, rng, "train", count=5)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.array([0, 1, 2, 10, 3]))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\)"):
        load_dataset("mnist", data_dir=tmp_path)


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
