"""Post-hoc analysis time as a ratio to the training time of the same run.

Reads runs trained and analyzed by keras-taylor-reproduce / -train + -analyze (their
done.json holds the `model.fit` wall time with the recorders, analysis.json the analysis
wall time) and prints one row per run. With --reanalyze it times the analysis again
here, one run after another, instead of reading the stored time.
"""

import json
import pathlib
import platform
import time

from absl import app
from absl import flags

from keras_taylor import experiments

_RUN_DIRS = flags.DEFINE_list("run_dirs", None, "Analyzed run directories.", required=True)
_REANALYZE = flags.DEFINE_bool("reanalyze", False, "Time the analysis again instead of reading it.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    print(f"CPU: {platform.machine()}; runs: {len(_RUN_DIRS.value)}")
    print("| run | rounds | train (s) | analysis (s) | ratio |\n|---|---|---|---|---|")
    for run_dir in _RUN_DIRS.value:
        run_dir = pathlib.Path(run_dir)
        done = json.loads((run_dir / "done.json").read_text())
        if _REANALYZE.value:
            start = time.perf_counter()
            analysis = experiments.analyze_run(run_dir, experiments.AnalysisConfig(**json.loads(
                (run_dir / "analysis.json").read_text())["analysis_config"]))
            seconds = time.perf_counter() - start
        else:
            analysis = json.loads((run_dir / "analysis.json").read_text())
            seconds = analysis["analysis_seconds"]
        rounds = len(analysis.get("rounds", {}).get("loss", []))
        print(f"| {run_dir.name} | {rounds} | {done['train_seconds']:.0f} | {seconds:.0f} | "
              f"{seconds / done['train_seconds']:.2f}× |")


if __name__ == "__main__":
    app.run(main)
