"""Brings committed run records' exploration up to what the analysis computes now, from the runs'
kept activation records, without redoing the Taylor analysis.

    python scripts/update_run_exploration.py RECORD.json RUN_DIR [RECORD.json RUN_DIR ...]

For each pair it recomputes the exploration entries with `keras_taylor.experiments.explore_run`
(the function the analysis calls) from RUN_DIR/activations, checks that every metric the record
already holds comes out the same (so the activation records are that run's), and writes the
record back with what is new (e.g. "alive_at_end", or "exploration_by_length" where it had
none), atomically. A record whose stored metrics differ is left untouched and named.
"""

import json
import pathlib
import sys

from keras_taylor import experiments, report


def _differences(stored, recomputed, where: str = "") -> list[str]:
    """Paths at which `stored` differs from `recomputed`, keys `recomputed` adds left out."""
    if isinstance(stored, dict) and isinstance(recomputed, dict):
        return [difference for key in stored
                for difference in (_differences(stored[key], recomputed[key], f"{where}/{key}") if key in recomputed
                                   else [f"{where}/{key}: no longer computed"])]
    return [] if stored == recomputed else [f"{where}: {str(stored)[:60]} ≠ {str(recomputed)[:60]}"]


def update(record_path: pathlib.Path, run_dir: pathlib.Path) -> list[str]:
    """Updates one record; returns the differences that stopped it (empty: updated)."""
    record = experiments.upgrade_analysis(json.loads(record_path.read_text()))
    explored = experiments.explore_run(run_dir / experiments.ACTIVATIONS_DIR, record["analysis_config"]["log_volume_k"],
                                       experiments.trained_epochs(record["run"]))
    explored = json.loads(json.dumps(explored, default=lambda number: number.item()))  # NumPy scalars
    differences = [difference for key in explored if key in record
                   for difference in _differences(record[key], explored[key], key)]
    if not differences:
        record.update(explored)
        report.write_run_record(record, record_path)
    return differences


def main(argv: list[str]) -> int:
    if len(argv) < 2 or len(argv) % 2:
        print(__doc__)
        return 2
    failed = False
    for record_path, run_dir in zip(argv[0::2], argv[1::2]):
        differences = update(pathlib.Path(record_path), pathlib.Path(run_dir))
        failed |= bool(differences)
        print(f"{record_path}: " + ("updated" if not differences else
                                    "NOT updated, its stored metrics differ: " + "; ".join(differences[:5])))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
