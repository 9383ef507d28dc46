"""Run directories: a JSON manifest and chunked array files that survive a killed process.

Layout::

    logdir/
      manifest.json                     what was recorded, how, with which versions
      streams/<stream>/chunk_000000.npz rows appended by a recorder, in order

Every file is written to a temporary name, flushed to disk and renamed into
place, so a process killed at any moment leaves every completed chunk (and the
last completed manifest) readable, and never a half-written one under a final
name. A resumed run appends chunks after the last complete one. Reading is
lazy, one chunk at a time, and needs only NumPy.
"""

import json
import os
import pathlib
import shutil
import uuid
import zipfile

import numpy as np

from keras_taylor import schema

MANIFEST = "manifest.json"
STREAMS = "streams"
_CHUNK_GLOB = "chunk_*.npz"


class RunExistsError(FileExistsError):
    """The log directory already holds a run."""


class CorruptRunError(ValueError):
    """A run directory, manifest or chunk that cannot be read (named in the message)."""


class RunStorageError(OSError):
    """Writing failed (e.g. a full disk); nothing was left half-written."""


def atomic_write(path: pathlib.Path, write) -> None:
    """Writes a file under its final name only once it is complete and on disk.

    Args:
        path: The file to write.
        write: Called with a binary file handle open on a temporary file next to `path`,
            which is flushed, synced and renamed to `path` afterwards.

    Raises:
        RunStorageError: if writing fails (e.g. a full disk); the temporary file is removed.
    """
    # A name of its own per writer: two processes writing the same file (a shared data cache)
    # each rename a complete file into place, and neither sees the other's partial one.
    temporary = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temporary, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise RunStorageError(
            f"Could not write {path}: {error}. Nothing was written under that name; what was there before "
            "is intact."
        ) from error
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _write_json(path: pathlib.Path, payload: dict) -> None:
    text = json.dumps(payload, indent=2, sort_keys=True, default=_json_default).encode()
    atomic_write(path, lambda handle: handle.write(text))


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (tuple, set)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _chunk_index(path: pathlib.Path) -> int:
    return int(path.stem.split("_")[1])


class RunWriter:
    """Appends rows to named streams of a run directory and keeps its manifest.

    Args:
        logdir: The run directory.
        manifest: What the run records (JSON-serializable).
        mode: "new" refuses a directory that holds a run; "resume" appends to it;
            "overwrite" deletes it first.
        chunk_rows: Rows buffered per stream before a chunk is written.

    Raises:
        RunExistsError: for mode "new" on a directory holding a run, or any mode
            on a non-empty directory that is not a run.
    """

    def __init__(self, logdir, manifest: dict, mode: str = "new", chunk_rows: int = 256):
        if mode not in ("new", "resume", "overwrite"):
            raise ValueError(f"mode must be 'new', 'resume' or 'overwrite'. Received: mode={mode!r}")
        self.logdir = pathlib.Path(logdir)
        self.chunk_rows = chunk_rows
        manifest_path = self.logdir / MANIFEST
        if self.logdir.exists() and any(self.logdir.iterdir()):
            if not manifest_path.exists():
                raise RunExistsError(
                    f"{self.logdir} is not empty and holds no {MANIFEST}: not a keras_taylor run; "
                    "refusing to write into it."
                )
            if mode == "new":
                raise RunExistsError(
                    f"{self.logdir} already holds a run. Pass mode='resume' to append to it or "
                    "mode='overwrite' to replace it."
                )
            if mode == "overwrite":
                shutil.rmtree(self.logdir)
        self.logdir.mkdir(parents=True, exist_ok=True)
        if mode == "resume" and manifest_path.exists():
            self.manifest = load_run(self.logdir).manifest
            self.manifest.setdefault("sessions", []).append(manifest)
        else:
            self.manifest = {"format_version": schema.FORMAT_VERSION, **manifest, "status": "running"}
        self._buffers: dict[str, list[dict]] = {}
        self._buffered_rows: dict[str, int] = {}
        self._next_chunk = {
            path.name: max((_chunk_index(chunk) for chunk in path.glob(_CHUNK_GLOB)), default=-1) + 1
            for path in (self.logdir / STREAMS).glob("*")
            if path.is_dir()
        }
        self.write_manifest()

    def write_manifest(self, **updates) -> None:
        """Merges `updates` into the manifest and rewrites it atomically."""
        self.manifest.update(updates)
        _write_json(self.logdir / MANIFEST, self.manifest)

    def append(self, stream: str, **arrays) -> None:
        """Buffers one row (arrays without the leading row axis) for `stream`."""
        self.extend(stream, **{key: np.asarray(value)[None] for key, value in arrays.items()})

    def extend(self, stream: str, **arrays) -> None:
        """Buffers several rows (arrays with a leading row axis) for `stream`."""
        block = {key: np.asarray(value) for key, value in arrays.items()}
        self._buffers.setdefault(stream, []).append(block)
        self._buffered_rows[stream] = self._buffered_rows.get(stream, 0) + len(next(iter(block.values())))
        if self._buffered_rows[stream] >= self.chunk_rows:
            self.flush(stream)

    def buffered_rows(self, stream: str) -> int:
        """Rows of `stream` buffered and not yet written."""
        return self._buffered_rows.get(stream, 0)

    def buffered_streams(self) -> list[str]:
        """Streams with buffered rows."""
        return [name for name, rows in self._buffered_rows.items() if rows]

    def write_chunk(self, stream: str, **arrays) -> None:
        """Writes `arrays` (rows on axis 0) as the stream's next chunk, unbuffered."""
        self.flush(stream)
        self._write(stream, {key: np.asarray(value) for key, value in arrays.items()})

    def _write(self, stream: str, arrays: dict) -> None:
        directory = self.logdir / STREAMS / stream
        directory.mkdir(parents=True, exist_ok=True)
        index = self._next_chunk.get(stream, 0)
        atomic_write(directory / f"chunk_{index:06d}.npz", lambda handle: np.savez(handle, **arrays))
        self._next_chunk[stream] = index + 1

    def flush(self, stream: str | None = None) -> None:
        """Writes the buffered rows of one stream (or all) as new chunks."""
        for name in [stream] if stream is not None else list(self._buffers):
            rows = self._buffers.get(name)
            if not rows:
                continue
            self._write(name, {key: np.concatenate([block[key] for block in rows]) for key in rows[0]})
            self._buffers[name] = []
            self._buffered_rows[name] = 0

    def close(self, status: str = "complete", **updates) -> None:
        """Flushes every stream and writes the manifest once, with its status and `updates`."""
        self.flush()
        self.write_manifest(status=status, **updates)


class Stream:
    """The chunks of one stream, read lazily.

    Attributes:
        name: The stream's name.
        chunk_paths: Its complete chunk files, in order.
    """

    def __init__(self, name: str, chunk_paths: list):
        self.name = name
        self.chunk_paths = chunk_paths

    def chunks(self, fields=None):
        """Yields each chunk as a dict of arrays (rows on axis 0), validating it.

        Args:
            fields: Read only these fields (the others stay on disk); default all.

        Raises:
            CorruptRunError: naming the chunk that cannot be read.
        """
        for path in self.chunk_paths:
            yield _read_chunk(path, fields)

    def chunk(self, index: int, fields=None) -> dict:
        """Chunk `index` (of `chunk_paths`) as a dict of arrays, optionally only some fields."""
        return _read_chunk(self.chunk_paths[index], fields)

    def read(self, field: str | None = None):
        """All rows of one field (or a dict of all fields), concatenated in memory."""
        parts = list(self.chunks(None if field is None else (field,)))
        if not parts:
            return np.empty((0,)) if field else {}
        if field is not None:
            if field not in parts[0]:
                raise KeyError(f"Stream '{self.name}' has fields {sorted(self.chunk(0))}, not {field!r}.")
            return np.concatenate([part[field] for part in parts])
        return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def _read_chunk(path: pathlib.Path, fields=None) -> dict:
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = archive.files if fields is None else [key for key in fields if key in archive.files]
            arrays = {key: archive[key] for key in names}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as error:
        raise CorruptRunError(f"Chunk {path} is corrupt or incomplete: {error}") from error
    lengths = {len(array) for array in arrays.values()}
    if len(lengths) > 1:
        raise CorruptRunError(f"Chunk {path} has fields of different lengths {sorted(lengths)}.")
    return arrays


class Run:
    """A recorded run directory, opened lazily.

    Attributes:
        logdir: The directory.
        manifest: The parsed manifest.
        leftover_temporaries: Temporary files a killed writer left (ignored).
    """

    def __init__(self, logdir: pathlib.Path, manifest: dict):
        self.logdir = logdir
        self.manifest = manifest
        self.leftover_temporaries = sorted(str(p) for p in logdir.rglob("*.tmp"))

    @property
    def streams(self) -> list[str]:
        root = self.logdir / STREAMS
        return sorted(path.name for path in root.glob("*") if path.is_dir()) if root.exists() else []

    def stream(self, name: str) -> Stream:
        directory = self.logdir / STREAMS / name
        if not directory.is_dir():
            raise KeyError(f"Run {self.logdir} has no stream {name!r}; it has {self.streams}.")
        paths = sorted(directory.glob(_CHUNK_GLOB), key=_chunk_index)
        return Stream(name, paths)


def load_run(logdir) -> Run:
    """Opens a run directory lazily.

    Raises:
        CorruptRunError: if the directory or its manifest is missing or unreadable.
        schema.UnreadableFormatError: if it was written in a format this code cannot read.
    """
    logdir = pathlib.Path(logdir)
    path = logdir / MANIFEST
    if not path.exists():
        raise CorruptRunError(f"{logdir} is not a keras_taylor run: it has no {MANIFEST}.")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CorruptRunError(f"Manifest {path} is corrupt: {error}") from error
    if not isinstance(manifest, dict) or "format_version" not in manifest:
        raise CorruptRunError(f"Manifest {path} is not a keras_taylor manifest.")
    schema.check_format(manifest, logdir)
    return Run(logdir, manifest)
