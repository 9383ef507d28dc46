"""The package surface: public names, the NumPy-only parts staying TensorFlow-free, and what a
(non-editable) wheel ships."""

import pathlib
import shutil
import subprocess
import sys
import zipfile

import keras_taylor


def test_every_public_name_resolves():
    for name in keras_taylor.__all__:
        assert getattr(keras_taylor, name) is not None, name


def test_analysis_side_imports_without_tensorflow():
    """The one check that run storage, analysis, exploration, plotting, report and data load without
    TensorFlow, Keras or tensorflow-datasets (they are NumPy/SciPy/matplotlib only)."""
    script = (
        "import sys\n"
        "import keras_taylor.schema, keras_taylor.storage, keras_taylor.quadratic_terms, keras_taylor.chain_rule\n"
        "import keras_taylor.taylor, keras_taylor.schedules\n"
        "import keras_taylor.analysis, keras_taylor.exploration, keras_taylor.plotting, keras_taylor.report\n"
        "import keras_taylor.open_questions\n"
        "import keras_taylor.data, keras_taylor.experiments\n"
        "keras_taylor.load_run\n"
        "print(sorted(m for m in ('tensorflow', 'keras', 'tensorflow_datasets') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_wheel_ships_every_module_and_the_embedded_dataset(tmp_path):
    """A regular install gets every subpackage (setup.cfg lists them one by one) and the embedded data."""
    root = pathlib.Path(__file__).resolve().parents[1]
    source = tmp_path / "source"  # a copy: the build leaves build/ behind, and must not reuse a stale one
    shutil.copytree(root, source, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__",
                                                                 "results", "runs", "reproduced"))
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                             "-w", str(tmp_path), str(source)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    (wheel,) = tmp_path.glob("keras_taylor-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    expected = {path.relative_to(root).as_posix() for path in (root / "keras_taylor").rglob("*.py")}
    expected |= {"keras_taylor_bin/" + path.name for path in (root / "bin").glob("*.py")}
    expected |= {path.relative_to(root).as_posix() for path in (root / "keras_taylor" / "_data").iterdir()}
    assert sorted(expected - shipped) == []
