"""keras-taylor-analyze: regret at every recorded scale and the exploration metrics of finished runs.

Writes analysis.json into each run directory (reused unless --force). Kept short:
the work is in keras_taylor.experiments.analyze_run.
"""

from absl import app
from absl import flags

from keras_taylor import experiments

_RUN_DIRS = flags.DEFINE_list("run_dirs", None, "Run directories written by keras-taylor-train.", required=True)
_NEURONS = flags.DEFINE_integer("neurons_per_layer", 50, "Neurons per layer in the neuron-scale bands (0: all).")
_GRID_POINTS = flags.DEFINE_integer("grid_points", 20, "About how many log-spaced N to evaluate regret at.")
_LOG_VOLUME_K = flags.DEFINE_integer("log_volume_k", 50, "Top singular values in the log-volume.")
_LAYER_CG_RTOL = flags.DEFINE_float("layer_cg_rtol", 1e-4, "Conjugate-gradient relative residual for layers "
                                    "solved matrix-free (the autoencoder's first layer).")
_FORCE = flags.DEFINE_bool("force", False, "Recompute analyses that exist.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    config = experiments.AnalysisConfig(neurons_per_layer=_NEURONS.value or None, grid_points=_GRID_POINTS.value,
                                        log_volume_k=_LOG_VOLUME_K.value, layer_cg_rtol=_LAYER_CG_RTOL.value)
    for run_dir in _RUN_DIRS.value:
        experiments.analyze_with_progress(run_dir, config, _FORCE.value)


def run():
    app.run(main)


if __name__ == "__main__":
    run()
