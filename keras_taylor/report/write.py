"""A report of many runs written into one directory.

Reads the `analysis.json` of every run under a task directory (written by
`keras_taylor.experiments.analyze_run`), groups them by optimizer, and writes
`summary.json`, `README.md` and the figures (PNG) into an output directory such as
`results/<task>/`.
"""

import json
import pathlib

from keras_taylor import open_questions
from keras_taylor.report.lengths import verdicts_by_length
from keras_taylor.report.paper_claims import claim_rows, claims
from keras_taylor.report.plots import figures
from keras_taylor.report.readme import markdown, open_question_lines
from keras_taylor.report.records import load_analyses, run_rows


def write_report(runs, output_dir, command: str, dpi: int = 150) -> dict:
    """Summary JSON, figures and README.md of analyzed runs (a folder or a list, see `load_analyses`)."""
    output_dir = pathlib.Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    analyses = load_analyses(runs)
    summary = claims(analyses)
    by_length = verdicts_by_length(analyses)
    questions = open_questions.open_questions(analyses)
    written = figures(analyses, output_dir, dpi=dpi, questions=questions)
    (output_dir / "summary.json").write_text(json.dumps(
        {"command": command, "runs": run_rows(analyses), "claims": claim_rows(summary), "optimizers": summary,
         "verdicts_by_length": {str(length): rows for length, rows in by_length.items()},
         "open_questions": questions}, indent=1))
    (output_dir / "README.md").write_text(f"# {pathlib.Path(output_dir).name}: measured\n\n"
                                          + markdown(summary, analyses, command, written, by_length)
                                          + "\n".join(open_question_lines(questions)))
    return summary
