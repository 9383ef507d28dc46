"""keras_taylor.data.image_folder: the image-folder route (CIFAR-10), its class order, layouts and errors."""

import os
import tempfile

import numpy as np
import pytest

from keras_taylor.data import channel_stats, load_dataset

from data_fixtures import CIFAR10_CLASS_NAMES, SHARED_DATA, assert_matches_written, write_image_folder


def test_image_folder_round_trips_png_with_sorted_class_indices(tmp_path, rng):
    written = write_image_folder(tmp_path / "folder", rng)
    for split in ("train", "test"):
        dataset = load_dataset("cifar10", split, data_dir=tmp_path / "folder", cache_dir=tmp_path / "cache")
        assert dataset.images.shape == (6, 32, 32, 3) and dataset.images.dtype == np.uint8
        assert dataset.class_names == ("airplane", "cat") and dataset.num_classes == 2
        assert dataset.source.startswith(f"image folder {(tmp_path / 'folder').resolve()}")
        assert_matches_written(dataset, written[split])


def test_image_folder_order_is_deterministic_and_limit_takes_a_prefix(tmp_path, rng):
    write_image_folder(tmp_path / "folder", rng, per_class=4)
    first = load_dataset("cifar10", data_dir=tmp_path / "folder", cache_dir=tmp_path / "cache_a")
    again = load_dataset("cifar10", data_dir=tmp_path / "folder", cache_dir=tmp_path / "cache_b")
    np.testing.assert_array_equal(first.images, again.images)
    np.testing.assert_array_equal(first.labels, again.labels)
    limited = load_dataset("cifar10", data_dir=tmp_path / "folder", cache_dir=tmp_path / "cache_a", limit=3)
    np.testing.assert_array_equal(limited.images, first.images[:3])
    np.testing.assert_array_equal(limited.labels, first.labels[:3])


def test_image_folder_leaves_no_temporary_directory_behind(tmp_path, rng, monkeypatch):
    # tfds' DatasetInfo.initialize_from_bucket makes a mkdtemp("tfds") directory it never removes.
    write_image_folder(tmp_path / "folder", rng)
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    load_dataset("cifar10", data_dir=tmp_path / "folder", cache_dir=tmp_path / "cache")
    assert list(temporary.iterdir()) == []
    assert tempfile.gettempdir() == str(temporary)


def test_image_folder_accepts_a_single_subfolder_holding_the_layout(tmp_path, rng):
    written = write_image_folder(tmp_path / "outer" / "cifar10-tiny", rng, splits=("train",))
    dataset = load_dataset("cifar10", data_dir=tmp_path / "outer", cache_dir=tmp_path / "cache")
    assert_matches_written(dataset, written["train"])


def test_image_folder_names_an_empty_class_folder(tmp_path, rng):
    write_image_folder(tmp_path / "folder", rng, splits=("train",))
    (tmp_path / "folder" / "train" / "dog").mkdir()
    (tmp_path / "folder" / "train" / "dog" / "notes.txt").write_text("no images here")
    with pytest.raises(ValueError, match=r"Class folder .*train/dog holds no .jpg/.jpeg/.png images"):
        load_dataset("cifar10", data_dir=tmp_path / "folder", cache_dir=tmp_path / "cache")


def test_image_folder_names_an_image_of_the_wrong_shape(tmp_path, rng):
    from PIL import Image

    write_image_folder(tmp_path / "folder", rng, splits=("train",))
    odd = tmp_path / "folder" / "train" / "cat" / "odd.png"
    Image.fromarray(rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)).save(odd)
    with pytest.raises(ValueError, match=r"odd.png is an image of shape \(16, 16, 3\); expected \(32, 32, 3\)"):
        load_dataset("cifar10", data_dir=tmp_path / "folder", cache_dir=tmp_path / "cache")


def test_image_folder_rejects_uniformly_wrong_sized_images(tmp_path, rng):
    write_image_folder(tmp_path / "folder", rng, splits=("train",), shape=(8, 8, 3))
    with pytest.raises(ValueError, match=r"are \(8, 8, 3\); expected \(32, 32, 3\)"):
        load_dataset("cifar10", data_dir=tmp_path / "folder", cache_dir=tmp_path / "cache")


def test_image_folder_names_a_file_that_is_no_image(tmp_path, rng):
    write_image_folder(tmp_path / "folder", rng, splits=("train",))
    (tmp_path / "folder" / "train" / "cat" / "fake.png").write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match="fake.png could not be decoded as an image"):
        load_dataset("cifar10", data_dir=tmp_path / "folder", cache_dir=tmp_path / "cache")


def test_image_folder_names_a_missing_split_or_layout(tmp_path, rng):
    write_image_folder(tmp_path / "folder", rng, splits=("train",))
    with pytest.raises(FileNotFoundError, match="has no 'test' split folder"):
        load_dataset("cifar10", "test", data_dir=tmp_path / "folder", cache_dir=tmp_path / "cache")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no image-folder layout"):
        load_dataset("cifar10", data_dir=tmp_path / "empty", cache_dir=tmp_path / "cache")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset("cifar10", data_dir=tmp_path / "nowhere", cache_dir=tmp_path / "cache")


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
    np.testing.assert_allclose(channel_stats(train).mean, [0.4914, 0.4822, 0.4465], atol=1e-3)
