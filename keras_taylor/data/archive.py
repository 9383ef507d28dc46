"""Archives of an image folder (.tar.gz, .tgz, .tar), unpacked once into a cache folder."""

import hashlib
import pathlib
import shutil
import tarfile
import uuid

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


def is_archive(path: pathlib.Path) -> bool:
    """Whether `path` is a file named as one of `ARCHIVE_SUFFIXES`."""
    return path.is_file() and path.name.endswith(ARCHIVE_SUFFIXES)


def archive_stem(path: pathlib.Path) -> str:
    """The archive's name without its archive suffix: "cifar10-jpeg" for "cifar10-jpeg.tar.gz".

    Raises:
        ValueError: if the name ends in none of `ARCHIVE_SUFFIXES`.
    """
    for suffix in ARCHIVE_SUFFIXES:
        if path.name.endswith(suffix):
            return path.name[: -len(suffix)]
    raise ValueError(f"{path} is not a .tar.gz, .tgz or .tar archive.")


def _file_sha256(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def unpack_once(archive: pathlib.Path, cache_folder: pathlib.Path) -> pathlib.Path:
    """Unpacks `archive` into `cache_folder/unpacked-<hash>` unless that folder already exists.

    The hash is of the archive's bytes, so a changed archive gets a fresh folder. The archive
    is unpacked into a temporary folder that is then renamed, so that an interrupted unpacking
    leaves nothing that looks complete, and concurrent loaders agree on one folder.

    Args:
        archive: a .tar.gz, .tgz or .tar file.
        cache_folder: where the unpacked folder is kept.

    Returns:
        The unpacked folder.

    Raises:
        tarfile.TarError: if the archive cannot be read, or holds absolute paths, links out of
            the folder or devices.
        OSError: if unpacking fails (e.g. a full disk); nothing is left under `cache_folder`.
    """
    target = cache_folder / f"unpacked-{_file_sha256(archive)[:16]}"
    if target.is_dir():
        return target
    cache_folder.mkdir(parents=True, exist_ok=True)
    staging = cache_folder / f".unpacking-{uuid.uuid4().hex}"
    staging.mkdir()  # Not tempfile.mkdtemp, whose 0700 mode would hide a shared cache from others.
    try:
        with tarfile.open(archive) as tar:
            # The "data" filter refuses absolute paths, links out of the folder and devices.
            tar.extractall(staging, filter="data")
        try:
            staging.rename(target)
        except OSError:
            if not target.is_dir():  # Not a concurrent loader that finished first.
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
