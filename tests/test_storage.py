"""Run directories: atomic chunks, lazy reading, refusals, crash safety."""

import signal
import subprocess
import sys

import numpy as np
import pytest

from keras_taylor import storage


def _write_rows(logdir, rows, rng, chunk_rows=4):
    writer = storage.RunWriter(logdir, {"kind": "test"}, chunk_rows=chunk_rows)
    expected = []
    for step in range(rows):
        values = rng.normal(size=3)
        writer.append("numbers", step=step, values=values)
        expected.append(values)
    return writer, np.array(expected)


def test_rows_round_trip_across_chunks(tmp_path, rng):
    writer, expected = _write_rows(tmp_path / "run", 10, rng)
    writer.close()
    run = storage.load_run(tmp_path / "run")
    assert run.manifest["status"] == "complete" and run.manifest["kind"] == "test"
    stream = run.stream("numbers")
    assert len(stream.chunk_paths) == 3  # 4 + 4 + 2 rows
    np.testing.assert_array_equal(stream.read("values"), expected)
    np.testing.assert_array_equal(stream.read("step"), np.arange(10))


def test_existing_run_is_refused_unless_resumed_or_overwritten(tmp_path, rng):
    writer, first = _write_rows(tmp_path / "run", 5, rng)
    writer.close()
    with pytest.raises(storage.RunExistsError, match="mode='resume'.*mode='overwrite'"):
        storage.RunWriter(tmp_path / "run", {"kind": "test"})
    resumed = storage.RunWriter(tmp_path / "run", {"kind": "test", "session": 2}, mode="resume", chunk_rows=4)
    resumed.append("numbers", step=5, values=np.ones(3))
    resumed.close()
    values = storage.load_run(tmp_path / "run").stream("numbers").read("values")
    np.testing.assert_array_equal(values, np.vstack([first, np.ones(3)]))
    storage.RunWriter(tmp_path / "run", {"kind": "other"}, mode="overwrite").close()
    run = storage.load_run(tmp_path / "run")
    assert run.manifest["kind"] == "other" and run.streams == []


def test_non_run_directory_is_never_written(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(storage.RunExistsError, match="not a keras_taylor run"):
        storage.RunWriter(tmp_path, {"kind": "test"}, mode="overwrite")
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_corrupt_chunk_and_manifest_are_named(tmp_path, rng):
    writer, _ = _write_rows(tmp_path / "run", 8, rng)
    writer.close()
    chunk = tmp_path / "run" / "streams" / "numbers" / "chunk_000001.npz"
    chunk.write_bytes(chunk.read_bytes()[:50])
    stream = storage.load_run(tmp_path / "run").stream("numbers")
    with pytest.raises(storage.CorruptRunError, match="chunk_000001.npz"):
        stream.read("values")
    (tmp_path / "run" / "manifest.json").write_text("{not json")
    with pytest.raises(storage.CorruptRunError, match="manifest.json"):
        storage.load_run(tmp_path / "run")
    with pytest.raises(storage.CorruptRunError, match="no manifest.json"):
        storage.load_run(tmp_path / "empty")


_WRITE_FOREVER = """
import sys
import numpy as np
from keras_taylor import storage
writer = storage.RunWriter(sys.argv[1], {"kind": "test"}, chunk_rows=1)
step = 0
while True:
    writer.append("numbers", step=step, values=np.full(1000, float(step)))
    step += 1
    if step == 20:
        print("ready", flush=True)
"""


def test_killed_writer_leaves_every_completed_chunk_readable(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-c", _WRITE_FOREVER, str(tmp_path / "run")], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().strip() == "ready"
    process.send_signal(signal.SIGKILL)
    process.wait()
    run = storage.load_run(tmp_path / "run")
    values = run.stream("numbers").read("values")
    steps = run.stream("numbers").read("step")
    assert len(steps) >= 20
    np.testing.assert_array_equal(steps, np.arange(len(steps)))
    np.testing.assert_array_equal(values[:, 0], steps)
    assert run.manifest["status"] == "running"


def test_full_disk_fails_loudly_and_leaves_no_partial_chunk(tmp_path, monkeypatch, rng):
    writer, _ = _write_rows(tmp_path / "run", 3, rng, chunk_rows=100)

    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(storage.np, "savez", no_space)
    with pytest.raises(storage.RunStorageError, match="No space left"):
        writer.flush()
    directory = tmp_path / "run" / "streams" / "numbers"
    assert list(directory.iterdir()) == []
