"""Activation records of a run, and run records as earlier versions of the analysis wrote them."""

import json

import numpy as np

from keras_taylor import exploration, storage


def write_activations(directory, configs: np.ndarray, widths: dict) -> None:
    """Writes bool configurations `[N, D, M]` as an `ActivationRecorder` run of layers `widths`
    (name → units, in order): record n at step 10·n of epoch n − 1."""
    manifest = {"kind": "activations", "num_units": configs.shape[2], "layer_order": list(widths),
                "layers": {name: {"shape": [width], "units": list(range(width))} for name, width in widths.items()}}
    writer = storage.RunWriter(directory, manifest)
    for index, config in enumerate(configs):
        writer.append("configurations", step=10 * index, epoch=index - 1, packed=np.packbits(config, axis=1))
    writer.close()


def old_schema(explored: dict, configs: exploration.PackedConfigurations, k: int) -> dict:
    """`explore_run`'s output as analyses before `log_volume_summary` kept it: every unit's sorted
    log-volume beside each summary, no "top_finite" (computed here from the activation records)."""
    old = json.loads(json.dumps(explored))
    for length, entry in [(None, old["exploration"]), *((int(n), e) for n, e in old["exploration_by_length"].items())]:
        part = configs if length is None else configs.first_epochs(length)
        unit_volume = exploration.log_volume(part, k=min(k, len(part) - 1), sort=False)

        def listed(values):
            return [None if np.isinf(v) else float(v) for v in np.sort(values)]

        del entry["log_volume"]["top_finite"]
        entry = {key: value for name, item in entry.items()  # the list came right after its summary
                 for key, value in ([(name, item), ("log_volume_sorted", listed(unit_volume))] if name == "log_volume"
                                    else [(name, item)])}
        for name, units in configs.layer_slices.items():
            del entry["per_layer"][name]["log_volume"]["top_finite"]
            entry["per_layer"][name]["log_volume_sorted"] = listed(unit_volume[units])
        if length is None:
            old["exploration"] = entry
        else:
            old["exploration_by_length"][str(length)] = entry
    return old
