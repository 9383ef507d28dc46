"""Post-hoc Taylor optima and regret over a recorded run (NumPy/SciPy only).

Paper, Theorem 2: with ℓ^n(W) the minibatch loss of round n and 𝒯^n(V) the
Taylor loss of round n at a chosen scale (network, one layer, one neuron),

    Regret(N) = Σ_{n≤N} ℓ^n(W^n) − min_{V∈H} Σ_{n≤N} 𝒯^n(V),

and the Taylor optimum is that minimum divided by N. The theorem bounds the
regret from above by O(√N); it is not bounded below by zero (a learner that
moves can beat every fixed comparator, and a dead neuron's regret is exactly 0).

Layout: `reader` opens a run once (typed manifest, streams by schema name);
`routes` dispatches each scale to its route's solver (`gram_route`, `stream_route`,
`chain_route` with `chain_factors`, `chain_pass` (one pass over the rounds for
every layer and scale of a chain) and `chain_solvers`, `factors_route` with
`affine_rounds` and `bounded`), each returning a `route.RouteMinima`; `regret`
turns those into the curves of `results`; `growth` fits their exponents.
"""

from keras_taylor.analysis.bounded import factored_taylor_optimum
from keras_taylor.analysis.grid import log_grid, nearest_grid
from keras_taylor.analysis.growth import band_fit_summary, fit_growth
from keras_taylor.analysis.quadratic import minimize_quadratic
from keras_taylor.analysis.reader import RoundLosses, RunReader, open_reader
from keras_taylor.analysis.regret import (checkpoint_rounds, layer_regrets, neuron_regret_band, regret_curve,
                                         round_losses)
from keras_taylor.analysis.results import (GrowthFit, LayerRegrets, MissingStatisticsError, NeuronRegretBand,
                                           NonFiniteRoundsWarning, RegretCurve, SolverDiagnostics,
                                           TaylorOptimumWarning)

__all__ = [
    "GrowthFit",
    "LayerRegrets",
    "MissingStatisticsError",
    "NeuronRegretBand",
    "NonFiniteRoundsWarning",
    "RegretCurve",
    "RoundLosses",
    "RunReader",
    "SolverDiagnostics",
    "TaylorOptimumWarning",
    "band_fit_summary",
    "checkpoint_rounds",
    "factored_taylor_optimum",
    "fit_growth",
    "layer_regrets",
    "log_grid",
    "minimize_quadratic",
    "nearest_grid",
    "neuron_regret_band",
    "open_reader",
    "regret_curve",
    "round_losses",
]
