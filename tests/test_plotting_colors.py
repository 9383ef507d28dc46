"""Each optimizer's fixed color: distinct, shared, and the same in every process."""

import os
import subprocess
import sys

import matplotlib.colors
import pytest

from keras_taylor import plotting


def test_known_optimizers_have_fixed_distinct_colors_case_insensitively():
    names = ("sgd", "rmsprop", "adam", "momentum", "signsgd")
    colors = [plotting.optimizer_color(name.upper()) for name in names]
    assert colors == [plotting.OPTIMIZER_COLORS[name] for name in names]
    assert len({matplotlib.colors.to_rgba(color) for color in colors}) == len(colors)
    with pytest.raises(TypeError):
        plotting.OPTIMIZER_COLORS["sgd"] = "red"  # a shared palette must not be mutable


def test_unknown_colors_do_not_depend_on_the_process():
    unknown = ["adagrad", "Lion", "nadam", "ftrl"]
    script = (
        "from keras_taylor import plotting; "
        f"print([plotting.optimizer_color(n) for n in {unknown!r}])"
    )
    outputs = []
    for hash_seed in ("1", "2"):
        environment = {**os.environ, "PYTHONHASHSEED": hash_seed, "MPLBACKEND": "Agg"}
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=environment
        )
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout.strip())
    in_process = [plotting.optimizer_color(name) for name in unknown]
    assert outputs[0] == outputs[1] == str(in_process)
    known = {matplotlib.colors.to_rgba(color) for color in plotting.OPTIMIZER_COLORS.values()}
    assert not known & {matplotlib.colors.to_rgba(color) for color in in_process}
