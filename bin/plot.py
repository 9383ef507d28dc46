"""keras-taylor-plot: the figures, claim numbers and README of the analyzed runs of one task.

Reads <task_dir>/*/analysis.json and writes PNG figures, summary.json and README.md
into --output_dir. Kept short: the work is in keras_taylor.report.write_report.
"""

import sys

from absl import app
from absl import flags

from keras_taylor import experiments, report

_TASK_DIR = flags.DEFINE_string("task_dir", None, "A folder of analyzed runs of one task.", required=True)
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where the figures and reports go.", required=True)
_DPI = flags.DEFINE_integer("dpi", 150, "Resolution of the PNG figures.")
_FIGURE1 = flags.DEFINE_bool("figure1", True, "Also train Fig. 1's small ReLU net and draw its shattered gradient.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    report.write_report(_TASK_DIR.value, _OUTPUT_DIR.value, " ".join(["keras-taylor-plot"] + sys.argv[1:]),
                        dpi=_DPI.value)
    if _FIGURE1.value:
        experiments.figure1(experiments.Figure1Config(), _OUTPUT_DIR.value, dpi=_DPI.value)
    print(f"Figures and README written to {_OUTPUT_DIR.value}")


def run():
    app.run(main)


if __name__ == "__main__":
    run()
