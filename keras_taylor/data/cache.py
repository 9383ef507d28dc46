"""The decoded-array cache: a split's decoded images and labels in one uncompressed `.npz`.

Decoding 60,000 JPEGs takes tens of seconds; loading the arrays back takes about one. The file
also holds a fingerprint of what it was decoded from, and is used only while that still matches.
"""

import hashlib
import os
import pathlib
import zipfile

import numpy as np

from keras_taylor import storage


def fingerprint(
    decoder: str, class_names: tuple[str, ...], image_files: list[tuple[str, int, int]], root: pathlib.Path
) -> str:
    """A digest of the decoder, the class names and every image's relative path, size and mtime.

    Args:
        decoder: names the decoding, so that a change of decoder invalidates old caches.
        class_names: the class index's names, in order.
        image_files: `(path, size in bytes, mtime in ns)` of every image, in the split's order.
        root: the folder that `path`s are taken relative to, so that a moved folder stays valid.

    Returns:
        The SHA-256 hex digest.
    """
    digest = hashlib.sha256("\n".join((decoder, *class_names)).encode())
    for path, size, mtime_ns in image_files:
        digest.update(f"\n{os.path.relpath(path, root)}\t{size}\t{mtime_ns}".encode())
    return digest.hexdigest()


def read_cached_arrays(npz_path: pathlib.Path, expected_fingerprint: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The cached `(images, labels)` if `npz_path` exists and was decoded from the same files.

    Args:
        npz_path: the cache file, as `write_cached_arrays` writes it.
        expected_fingerprint: `fingerprint` of the files the arrays must come from.

    Returns:
        `(images, labels)`, or None if the file is missing, unreadable or of other files.
    """
    if not npz_path.is_file():
        return None
    try:
        with np.load(npz_path, allow_pickle=False) as arrays:
            if str(arrays["fingerprint"]) != expected_fingerprint:
                return None
            return arrays["images"], arrays["labels"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None  # An unreadable cache is decoded afresh and overwritten, never fatal.


def write_cached_arrays(
    npz_path: pathlib.Path, images: np.ndarray, labels: np.ndarray, source_fingerprint: str
) -> None:
    """Writes `images` and `labels` to `npz_path` under their `fingerprint`, atomically.

    Args:
        npz_path: the cache file; its folder is created if needed.
        images: the decoded images.
        labels: their labels.
        source_fingerprint: `fingerprint` of the files they were decoded from.

    Raises:
        keras_taylor.storage.RunStorageError: (an OSError) if writing fails, e.g. a full disk;
            nothing is left under `npz_path`.
    """
    npz_path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"images": images, "labels": labels, "fingerprint": np.array(source_fingerprint)}
    # Uncompressed: CIFAR-10 loads in about a second.
    storage.atomic_write(npz_path, lambda handle: np.savez(handle, **arrays))
