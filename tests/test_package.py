"""The package surface: public names, and the NumPy-only parts staying TensorFlow-free."""

import subprocess
import sys

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
