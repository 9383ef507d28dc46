"""keras_taylor.data.archive: archives of an image folder, unpacked once, atomically, and reused."""

import tarfile

import numpy as np
import pytest

from keras_taylor.data import load_dataset
from keras_taylor.data.archive import archive_stem, is_archive

from data_fixtures import (
    assert_matches_written,
    forbid,
    image_folder_builder_module,
    make_archive,
    write_image_folder,
)

ARCHIVE_NAMES = {
    "tar_gz": ("cifar10-jpeg.tar.gz", "cifar10-jpeg"),
    "tgz": ("tiny.v2.tgz", "tiny.v2"),
    "tar": ("tiny.tar", "tiny"),
}


@pytest.mark.parametrize("file_name, stem", ARCHIVE_NAMES.values(), ids=ARCHIVE_NAMES.keys())
def test_archive_names_are_recognized_and_stemmed(tmp_path, file_name, stem):
    path = tmp_path / file_name
    assert not is_archive(path)  # Not a file yet.
    path.write_bytes(b"")
    assert is_archive(path) and archive_stem(path) == stem


def test_other_names_are_no_archives(tmp_path):
    path = tmp_path / "images.zip"
    path.write_bytes(b"")
    assert not is_archive(path)
    with pytest.raises(ValueError, match=r"images.zip is not a .tar.gz, .tgz or .tar archive"):
        archive_stem(path)


def test_archive_is_unpacked_once_and_reused(tmp_path, rng, monkeypatch):
    written = write_image_folder(tmp_path / "src", rng, image_format="JPEG")
    archive = tmp_path / "tiny-jpeg.tar.gz"
    make_archive(archive, tmp_path / "src", arcname="tiny")  # The layout sits in one subfolder.
    cache = tmp_path / "cache"

    train = load_dataset("cifar10", "train", data_dir=archive, cache_dir=cache)
    unpacked = [path for path in (cache / "tiny-jpeg").glob("unpacked-*") if path.is_dir()]
    assert len(unpacked) == 1 and (unpacked[0] / "tiny" / "train" / "cat").is_dir()
    assert (cache / "tiny-jpeg" / f"{unpacked[0].name}.train.npz").is_file()
    assert f"unpacked from {archive}" in train.source
    assert_matches_written(train, written["train"])

    unpacked_mtime = unpacked[0].stat().st_mtime_ns
    with monkeypatch.context() as patch:
        forbid(patch, tarfile, "open", "tarfile.open")
        test = load_dataset("cifar10", "test", data_dir=archive, cache_dir=cache)  # Decodes only.
        forbid(patch, image_folder_builder_module(), "ImageFolder", "ImageFolder")
        train_again = load_dataset("cifar10", "train", data_dir=archive, cache_dir=cache)
    assert_matches_written(test, written["test"])
    np.testing.assert_array_equal(train_again.images, train.images)
    assert unpacked[0].stat().st_mtime_ns == unpacked_mtime
    assert list((cache / "tiny-jpeg").glob(".unpacking-*")) == []


def test_interrupted_unpacking_leaves_no_cache_behind(tmp_path, rng, monkeypatch):
    write_image_folder(tmp_path / "src", rng, splits=("train",))
    archive = tmp_path / "tiny.tgz"
    make_archive(archive, tmp_path / "src", arcname=".")
    cache = tmp_path / "cache"

    def fail_midway(self, *args, **kwargs):
        raise OSError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(tarfile.TarFile, "extractall", fail_midway)
        with pytest.raises(OSError, match="disk full"):
            load_dataset("cifar10", data_dir=archive, cache_dir=cache)
    assert list((cache / "tiny").iterdir()) == []
    assert len(load_dataset("cifar10", data_dir=archive, cache_dir=cache)) == 6
