"""Rewrites run records in the current schema (`keras_taylor.experiments.upgrade_analysis`), in place.

    python scripts/upgrade_run_records.py RECORD.json [RECORD.json ...]

(a RECORD may be a run record of results/<task>/runs/ or a run's analysis.json)

Records written before the log-volumes were summarized keep every unit's sorted log-volume, for the
network, each layer and each length prefix: 5–8 MB for a convnet run. Each becomes the top values
the reports read ("top_finite"); the rest of the record is checked to come out unchanged, and the
record is written back atomically. A record already current is left as it is; one whose lists
disagree with their summaries is left untouched and named. Reports read either schema, so this only
shrinks the files.
"""

import copy
import json
import pathlib
import sys

from keras_taylor import experiments, storage


def _without_log_volumes(record: dict) -> dict:
    """`record` without what the upgrade replaces: every "log_volume_sorted" and "top_finite"."""
    if isinstance(record, dict):
        return {key: _without_log_volumes(value) for key, value in record.items()
                if key not in ("log_volume_sorted", "top_finite")}
    return [_without_log_volumes(value) for value in record] if isinstance(record, list) else record


def upgrade(path: pathlib.Path) -> str:
    """Upgrades one record; returns what was done."""
    text = path.read_text()
    record = json.loads(text)
    try:
        upgraded = experiments.upgrade_analysis(copy.deepcopy(record))
    except ValueError as error:
        return f"NOT upgraded: {error}"
    if upgraded == record:
        return "already current"
    if _without_log_volumes(upgraded) != _without_log_volumes(record):
        return "NOT upgraded: the upgrade changed more than the log-volume lists"
    # Written as it is (an analysis.json keeps its per-round losses), atomically.
    storage.atomic_write(path, lambda handle: handle.write(json.dumps(upgraded, indent=1).encode()))
    return f"upgraded, {len(text.encode()) / 1e6:.2f} MB → {path.stat().st_size / 1e6:.2f} MB"


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    results = {path: upgrade(pathlib.Path(path)) for path in argv}
    for path, result in results.items():
        print(f"{path}: {result}")
    return 1 if any(result.startswith("NOT") for result in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
