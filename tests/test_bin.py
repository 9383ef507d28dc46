"""Smoke tests of every binary's main on a tiny config, each in its own process (absl flags are global)."""

import json
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

TINY = ["--limit=96", "--epochs=1", "--batch_size=32", "--probe_size=40", "--activation_records=2", "--verbose=0",
        "--neurons_per_layer=3"]


def _run(module: str, *args: str, cwd=None) -> str:
    result = subprocess.run([sys.executable, "-m", f"keras_taylor_bin.{module}", *args], capture_output=True,
                            text=True, timeout=600, cwd=cwd, env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin",
                                                                  "HOME": str(cwd or "/tmp")})
    assert result.returncode == 0, f"{module} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    work = tmp_path_factory.mktemp("bin")
    flagfile = work / "train.flags"
    flagfile.write_text("\n".join(TINY + ["--optimizer=adam", f"--output_dir={work / 'runs'}"]) + "\n")
    _run("train", f"--flagfile={flagfile}", cwd=work)
    return work, work / "runs" / "autoencoder" / "adam_lr0.01_seed0"


def test_train_writes_a_run_and_reuses_it(trained):
    work, run_dir = trained
    done = json.loads((run_dir / "done.json").read_text())
    assert done["config"]["optimizer"] == "adam" and done["examples"] == 96
    assert (run_dir / "taylor" / "manifest.json").exists() and (run_dir / "activations" / "manifest.json").exists()
    output = _run("train", f"--flagfile={work / 'train.flags'}", cwd=work)
    assert "reused" in output


def test_train_refuses_a_run_over_its_storage_budget(tmp_path):
    result = subprocess.run([sys.executable, "-m", "keras_taylor_bin.train", *TINY, "--storage_budget_gib=1e-6",
                             f"--output_dir={tmp_path}"], capture_output=True, text=True, timeout=600)
    assert result.returncode != 0 and "storage_budget_bytes=1073 " in result.stderr


def test_analyze_then_plot(trained):
    work, run_dir = trained
    _run("analyze", f"--run_dirs={run_dir}", "--neurons_per_layer=2", "--grid_points=4", cwd=work)
    analysis = json.loads((run_dir / "analysis.json").read_text())
    assert set(analysis["layers"]) == {"relu_1", "relu_2", "relu_3", "relu_4", "relu_5", "reconstruction"}
    assert len(analysis["layers"]["relu_2"]["neuron"]["neurons"]) == 2
    first_layer = analysis["layers"]["relu_1"]["layer"]
    assert len(first_layer["regret"]) == 3  # the first layer's layer scale, matrix-free
    # 96 images are linearly independent in 785 columns: each prefix's minimizer is exact, no CG step taken.
    assert first_layer["solver"]["iterations"] == [0, 0, 0] and first_layer["solver"]["all_converged"]
    assert "missing" in analysis["network"]  # 84,000 parameters: said, not silently dropped
    _run("plot", f"--task_dir={run_dir.parent}", f"--output_dir={work / 'figures'}", "--dpi=40", "--nofigure1",
         cwd=work)
    readme = (work / "figures" / "README.md").read_text()
    assert "keras-taylor-plot" in readme and "fig4_regret_by_optimizer.png" in readme
    assert readme.splitlines()[2].startswith("**Scale:") and "do not test the paper's claims" in readme
    assert (work / "figures" / "fig5_exploration.png").stat().st_size > 0


def test_sweep_picks_the_lowest_loss(tmp_path):
    _run("sweep", *TINY, "--rates=0.01,0.1", f"--output_dir={tmp_path}", cwd=tmp_path)
    summary = json.loads((tmp_path / "autoencoder" / "sgd_sweep.json").read_text())
    losses = summary["final_epoch_loss"]
    assert summary["best_learning_rate"] == float(min(losses, key=losses.get))


def test_reproduce_end_to_end_and_resumed_from_its_run_records(tmp_path):
    flags = [*TINY, "--epochs=2", "--activation_records=5", "--optimizers=sgd,rmsprop", "--seeds=1",
             "--analysis_neurons=2", "--layer_scale_layers=relu_1,reconstruction", "--nofigure1",
             f"--work_dir={tmp_path / 'runs'}",
             f"--results_dir={tmp_path / 'results'}"]
    _run("reproduce", *flags, "--grid_points=4", cwd=tmp_path)
    summary = json.loads((tmp_path / "results" / "summary.json").read_text())
    assert set(summary["optimizers"]) == {"sgd", "rmsprop"}
    assert "exploration" in summary["optimizers"]["sgd"]
    assert [(row["optimizer"], row["learning_rate"], row["epochs"]) for row in summary["runs"]] == [
        ("sgd", 8.0, 2), ("rmsprop", 0.001, 2)]
    assert list(summary["verdicts_by_length"]) == ["1", "2"]  # the first epoch, and the whole runs
    assert summary["verdicts_by_length"]["2"] == summary["claims"]
    records = sorted((tmp_path / "results" / "runs").glob("*.json"))
    assert [path.name for path in records] == ["rmsprop_lr0.001_seed0.json", "sgd_lr8_seed0.json"]
    run_dirs = sorted((tmp_path / "runs" / "autoencoder").iterdir())
    from keras_taylor import exploration, report  # pylint: disable=import-outside-toplevel

    for record, run_dir in zip(records, run_dirs):  # the record is the analysis without its per-round arrays
        stored, full = json.loads(record.read_text()), json.loads((run_dir / "analysis.json").read_text())
        assert stored["layers"] == full["layers"] and stored["exploration"] == full["exploration"]
        assert {name for name, layer in stored["layers"].items() if "regret" in layer["layer"]} == {
            "relu_1", "reconstruction"}
        assert stored["rounds"]["count"] == len(full["rounds"]["loss"])
        # The first epoch's exploration: the metrics of the activation records made during it.
        first = exploration.PackedConfigurations.from_run(run_dir / "activations").first_epochs(1)
        by_length = stored["exploration_by_length"]["1"]
        assert by_length["steps"] == first.steps.tolist() and len(first) < len(stored["exploration"]["steps"])
        distances = exploration.min_hamming(first).normalized
        assert by_length["min_hamming_normalized"] == [None if not np.isfinite(v) else v for v in distances]

    from_run_dirs = report.write_report(run_dirs, tmp_path / "from_run_dirs", "test")
    assert json.loads(json.dumps(from_run_dirs)) == summary["optimizers"]

    # A fresh machine: no run directories, only the records. Nothing is trained again.
    shutil.rmtree(tmp_path / "runs")
    output = _run("reproduce", *flags, "--grid_points=4", cwd=tmp_path)
    assert output.count("skipped") == 2 and not (tmp_path / "runs").exists()
    assert json.loads((tmp_path / "results" / "summary.json").read_text())["optimizers"] == summary["optimizers"]

    # Other settings do not silently reuse, nor overwrite, a record.
    result = subprocess.run([sys.executable, "-m", "keras_taylor_bin.reproduce", *flags, "--grid_points=5"],
                            capture_output=True, text=True, timeout=600, cwd=tmp_path,
                            env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert result.returncode != 0 and "analysis.grid_points: 4 ≠ 5" in result.stderr


def test_reproduce_balances_seeds_and_can_drop_the_recordings(tmp_path):
    flags = [*TINY, "--optimizers=sgd,rmsprop", "--seeds=2", "--seeds_outer", "--nokeep_taylor_data",
             "--analysis_neurons=2", "--grid_points=3", "--layer_scale_layers=reconstruction", "--nofigure1",
             f"--work_dir={tmp_path / 'runs'}",
             f"--results_dir={tmp_path / 'results'}"]
    output = _run("reproduce", *flags, cwd=tmp_path)
    analyzed = [pathlib.Path(line.split()[-1]).name for line in output.splitlines() if line.startswith("Analyzing")]
    assert analyzed == ["sgd_lr8_seed0", "rmsprop_lr0.001_seed0", "sgd_lr8_seed1", "rmsprop_lr0.001_seed1"]
    run_dir = tmp_path / "runs" / "autoencoder" / "sgd_lr8_seed1"
    assert not (run_dir / "taylor").exists() and (run_dir / "activations").is_dir()
    record = tmp_path / "results" / "runs" / "sgd_lr8_seed1.json"
    kept = json.loads(record.read_text())
    assert "regret" in kept["layers"]["relu_1"]["neuron"]

    from keras_taylor import experiments  # pylint: disable=import-outside-toplevel

    with pytest.raises(FileNotFoundError, match=r"recorders whose directories are gone: \['taylor'\]"):
        experiments.analyze_run(run_dir)
    # Its record deleted, the run is trained again (not analyzed without its Taylor data): the same record.
    record.unlink()
    output = _run("reproduce", *flags, cwd=tmp_path)
    assert output.count("skipped") == 3 and "finished with the same config, reused" not in output
    again = json.loads(record.read_text())
    assert again["layers"] == kept["layers"] and again["exploration"] == kept["exploration"]


def test_stray_arguments_are_rejected(tmp_path):
    result = subprocess.run([sys.executable, "-m", "keras_taylor_bin.plot", "--task_dir=x", "--output_dir=y", "extra"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "Unexpected arguments" in result.stderr


def test_figure1_draws_a_trained_relu_net(tmp_path):
    from keras_taylor import experiments  # pylint: disable=import-outside-toplevel

    written = experiments.figure1(experiments.Figure1Config(widths=(8, 8), steps=16, points=101), tmp_path, dpi=40)
    assert [path.name for path in written] == ["fig1_piecewise_linear.png"] and written[0].stat().st_size > 0


# TensorFlow start-up lines that TF_CPP_MIN_LOG_LEVEL filters (INFO: CPU features, oneDNN; ERROR: the CUDA
# probe of a CPU-only machine). absl's pre-initialization lines (cudart_stub) bypass the filter: not listed.
_FILTERABLE_CHATTER = ("cpu_feature_guard", "oneDNN custom operations", "failed call to cuInit")


def _checkout_environment(tmp_path, **variables) -> dict:
    """A clean environment that imports keras_taylor and keras_taylor_bin (= bin/) from this checkout."""
    root = pathlib.Path(__file__).resolve().parent.parent
    packages = tmp_path / "packages"
    packages.mkdir(exist_ok=True)
    if not (packages / "keras_taylor_bin").exists():
        (packages / "keras_taylor_bin").symlink_to(root / "bin")
    return {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": f"{packages}:{root}", **variables}


def _chatter(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if any(marker in line for marker in _FILTERABLE_CHATTER)]


def _demo_help(tmp_path, **variables) -> subprocess.CompletedProcess:
    """keras-taylor-demo --helpfull: imports the binary (and TensorFlow, at module level), prints its flags."""
    result = subprocess.run([sys.executable, "-m", "keras_taylor_bin.demo", "--helpfull"], capture_output=True,
                            text=True, timeout=300, env=_checkout_environment(tmp_path, **variables))
    assert "--num_examples" in result.stdout, result.stderr[-3000:]  # its own flag (absl exits 1 after help)
    return result


def _import_tensorflow(tmp_path, level: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "import tensorflow"], capture_output=True, text=True,
                          timeout=300, env=_checkout_environment(tmp_path, TF_CPP_MIN_LOG_LEVEL=level))


def test_binaries_quiet_tensorflow_start_up_unless_the_user_sets_the_level(tmp_path):
    if not _chatter(_import_tensorflow(tmp_path, "0").stderr):
        pytest.skip("This TensorFlow build prints no filterable start-up lines here: nothing to silence.")
    if _chatter(_import_tensorflow(tmp_path, "3").stderr):
        # Seen with TensorFlow 2.21.0 on a fresh install: its start-up lines went through absl before
        # absl::InitializeLog(), which no TF_CPP_MIN_LOG_LEVEL filters.
        pytest.skip("This TensorFlow build prints its start-up lines whatever TF_CPP_MIN_LOG_LEVEL says: "
                    "the level the binaries set cannot silence them.")
    assert _chatter(_demo_help(tmp_path).stderr) == []
    loud = _demo_help(tmp_path, TF_CPP_MIN_LOG_LEVEL="0")
    assert _chatter(loud.stderr), loud.stderr[-3000:]  # the user's own level is kept
