"""Summaries across runs: the paper's claims as numbers, its figures, and a Markdown report.

NumPy and matplotlib only. One module per part, in the order the data flows through them:

- `records`: the analyses a report reads (`load_analyses`) and the run records results/<task>/runs/
  keeps of them (`run_record`, `write_run_record`, `existing_run_record`), read back by the
  `*_from_json` functions and `RoundLossSummary` (the per-round losses in each form).
- `paper_claims`: the paper's claims measured per optimizer (`claims`) and judged (`claim_rows`).
- `lengths`: every claim judged on the first E epochs of the same runs (`prefix_analysis`,
  `verdicts_by_length`).
- `plots`: the figures (`figures`; Fig. 6's title: `training_loss_title`).
- `readme`: the README.md text (`markdown`, `open_question_lines`).
- `write`: `write_report`, which writes summary.json, the figures and README.md into a directory.
"""

from keras_taylor.report.lengths import (
    LENGTH_QUANTITIES,
    lengths_measured,
    prefix_analysis,
    quantities_by_length,
    verdicts_by_length,
)
from keras_taylor.report.paper_claims import (
    TOP_NEURONS,
    TOP_SHARE,
    claim_rows,
    claims,
    per_layer_exploration,
    top_count,
    top_per_layer_row,
)
from keras_taylor.report.plots import figures, training_loss_title
from keras_taylor.report.readme import PAPER_SCALE, length_table, markdown, open_question_lines, scale_statement
from keras_taylor.report.records import (
    RoundLossSummary,
    band_from_json,
    curve_from_json,
    existing_run_record,
    fit_from_json,
    group_name,
    load_analyses,
    loss_blocks,
    losses_by_epoch,
    optimizer_of,
    run_record,
    run_rows,
    write_run_record,
)
from keras_taylor.report.write import write_report

__all__ = [
    "LENGTH_QUANTITIES",
    "PAPER_SCALE",
    "RoundLossSummary",
    "TOP_NEURONS",
    "TOP_SHARE",
    "band_from_json",
    "claim_rows",
    "claims",
    "curve_from_json",
    "existing_run_record",
    "figures",
    "fit_from_json",
    "group_name",
    "length_table",
    "lengths_measured",
    "load_analyses",
    "loss_blocks",
    "losses_by_epoch",
    "markdown",
    "open_question_lines",
    "optimizer_of",
    "per_layer_exploration",
    "prefix_analysis",
    "quantities_by_length",
    "run_record",
    "run_rows",
    "scale_statement",
    "top_count",
    "top_per_layer_row",
    "training_loss_title",
    "verdicts_by_length",
    "write_report",
    "write_run_record",
]
