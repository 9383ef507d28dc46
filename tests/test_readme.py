"""The README's model.fit example runs as written (on fewer digits, so the test stays quick)."""

import pathlib
import re
import subprocess
import sys

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def test_readme_fit_example_runs(tmp_path):
    text = README.read_text()
    section = text[text.index("## In `model.fit`, then post hoc"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert "TaylorRecorder" in code and "regret_curve" in code
    # The only change: 640 of the 10,000 digits and one epoch.
    shortened = code.replace('load_dataset("embedded_mnist")', 'load_dataset("embedded_mnist", limit=640)')
    shortened = shortened.replace("epochs=2", "epochs=1")
    assert shortened != code
    result = subprocess.run([sys.executable, "-c", shortened], cwd=tmp_path, capture_output=True, text=True,
                            timeout=600, env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin",
                                              "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "runs" / "ae" / "taylor" / "manifest.json").exists()
