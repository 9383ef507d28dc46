"""keras_taylor.data.cache: decoded image folders cached as .npz, keyed by a fingerprint of their files."""

import pathlib

import numpy as np
import pytest

from keras_taylor.data import load_dataset
from keras_taylor.data.cache import fingerprint, read_cached_arrays, write_cached_arrays
from keras_taylor.data.image_folder import IMAGE_DECODER

from data_fixtures import (
    assert_matches_written,
    forbid,
    image_folder_builder_module,
    write_image_folder,
)

# A listing as the image-folder route makes it: class names, and (path, size, mtime in ns) per image.
ROOT = pathlib.Path("/data/cifar10")
CLASS_NAMES = ("airplane", "cat")
IMAGE_FILES = [
    ("/data/cifar10/train/airplane/0000.jpg", 1021, 1700000000123456789),
    ("/data/cifar10/train/cat/0007.png", 3203, 1700000000987654321),
]


def test_fingerprint_is_that_of_existing_caches():
    # Computed by the loader that wrote the caches in use; a change here makes every
    # decoded cache stale (decoded again on next use), so it must be deliberate.
    assert fingerprint(IMAGE_DECODER, CLASS_NAMES, IMAGE_FILES, ROOT) == (
        "f0e0186403d4055f46bf54ebd29d6b59525ad36d0dd93e8faa0f38f417d2821f"
    )


FINGERPRINT_CHANGES = {
    "decoder": dict(decoder=IMAGE_DECODER + " v2"),
    "class_name": dict(class_names=("airplane", "dog")),
    "class_order": dict(class_names=("cat", "airplane")),
    "path": dict(image_files=[("/data/cifar10/train/airplane/0001.jpg", *IMAGE_FILES[0][1:]), IMAGE_FILES[1]]),
    "size": dict(image_files=[(IMAGE_FILES[0][0], 1022, IMAGE_FILES[0][2]), IMAGE_FILES[1]]),
    "mtime": dict(image_files=[(*IMAGE_FILES[0][:2], IMAGE_FILES[0][2] + 1), IMAGE_FILES[1]]),
    "image_order": dict(image_files=IMAGE_FILES[::-1]),
    "image_dropped": dict(image_files=IMAGE_FILES[:1]),
}


@pytest.mark.parametrize("change", FINGERPRINT_CHANGES.values(), ids=FINGERPRINT_CHANGES.keys())
def test_fingerprint_changes_with_every_field(change):
    listing = dict(decoder=IMAGE_DECODER, class_names=CLASS_NAMES, image_files=IMAGE_FILES, root=ROOT)
    assert fingerprint(**{**listing, **change}) != fingerprint(**listing)


def test_fingerprint_takes_paths_relative_to_the_root():
    moved_root = pathlib.Path("/elsewhere/cifar10")
    moved_files = [(path.replace(str(ROOT), str(moved_root)), size, mtime) for path, size, mtime in IMAGE_FILES]
    assert fingerprint(IMAGE_DECODER, CLASS_NAMES, moved_files, moved_root) == fingerprint(
        IMAGE_DECODER, CLASS_NAMES, IMAGE_FILES, ROOT
    )


def test_cached_arrays_round_trip_only_under_their_fingerprint(tmp_path, rng):
    images = rng.integers(0, 256, size=(5, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=5)
    npz_path = tmp_path / "new folder" / "train.npz"
    assert read_cached_arrays(npz_path, "abc") is None
    write_cached_arrays(npz_path, images, labels, "abc")
    assert sorted(path.name for path in npz_path.parent.iterdir()) == ["train.npz"]  # No temporary left.
    cached_images, cached_labels = read_cached_arrays(npz_path, "abc")
    np.testing.assert_array_equal(cached_images, images)
    np.testing.assert_array_equal(cached_labels, labels)
    assert read_cached_arrays(npz_path, "abd") is None


def test_decoded_folder_is_cached_and_refreshed_when_files_change(tmp_path, rng, monkeypatch):
    from PIL import Image

    folder = tmp_path / "folder"
    write_image_folder(folder, rng, splits=("train",))
    first = load_dataset("cifar10", data_dir=folder, cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("folder-*/train.npz"))) == 1

    with monkeypatch.context() as patch:
        forbid(patch, image_folder_builder_module(), "ImageFolder", "ImageFolder")
        cached = load_dataset("cifar10", data_dir=folder, cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(cached.images, first.images)
    np.testing.assert_array_equal(cached.labels, first.labels)

    new_pixels = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    Image.fromarray(new_pixels).save(folder / "train" / "cat" / "0099.png")
    refreshed = load_dataset("cifar10", data_dir=folder, cache_dir=tmp_path / "cache")
    assert len(refreshed) == 7
    assert any(np.array_equal(image, new_pixels) for image in refreshed.images)


def test_an_unreadable_decode_cache_is_rebuilt(tmp_path, rng):
    written = write_image_folder(tmp_path / "folder", rng, splits=("train",))
    load_dataset("cifar10", data_dir=tmp_path / "folder", cache_dir=tmp_path / "cache")
    (npz_path,) = (tmp_path / "cache").glob("folder-*/train.npz")
    npz_path.write_bytes(b"truncated")
    assert_matches_written(
        load_dataset("cifar10", data_dir=tmp_path / "folder", cache_dir=tmp_path / "cache"), written["train"]
    )
    with np.load(npz_path) as arrays:
        assert arrays["images"].shape == (6, 32, 32, 3)
