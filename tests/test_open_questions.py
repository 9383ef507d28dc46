"""The open questions' numbers against direct computations on synthetic analyses."""

import numpy as np
import pytest
import scipy.stats

from keras_taylor import open_questions


def _analysis(rng, group_seed: int, losses, distances, dead_total, switches: float, epochs=None) -> dict:
    records = len(distances)
    epochs = list(range(-1, records - 1)) if epochs is None else epochs
    volumes = rng.normal(size=6)
    return {"run": {"config": {"seed": group_seed}, "final_epoch_loss": losses[-1]},
            "history": {"epoch": list(range(len(losses))), "loss": list(losses)},
            "exploration": {"min_hamming_normalized": [None] + list(distances[1:]), "epochs": epochs,
                            "switches": {"mean_finite": switches}, "log_volume": {"mean_finite": float(volumes.mean())},
                            "num_units": 10,
                            "per_layer": {"a": {"log_volume": {"mean_finite": 1.5, "count": 3, "num_infinite": 1}},
                                          "b": {"log_volume": {"mean_finite": 0.5, "count": 2, "num_infinite": 0}}},
                            "dead_units": {"total": list(dead_total),
                                           "per_layer": {"a": list(dead_total), "b": [0] * records}}}}


def test_rank_correlation_is_spearmans_with_an_interval_around_it(rng):
    x = rng.normal(size=12)
    y = -x + rng.normal(scale=0.5, size=12)
    result = open_questions.rank_correlation(x, y, resamples=500)
    expected = scipy.stats.spearmanr(x, y)
    assert result["rho"] == pytest.approx(expected.statistic) and result["p_value"] == pytest.approx(expected.pvalue)
    assert result["interval"][0] <= result["rho"] <= result["interval"][1] and result["n"] == 12
    assert open_questions.rank_correlation(x[:3], y[:3])["rho"] is None  # too few runs
    assert open_questions.rank_correlation(np.ones(6), y[:6])["rho"] is None  # a constant metric
    with_nan = open_questions.rank_correlation(np.append(x, np.nan), np.append(y, 1.0), resamples=500)
    assert with_nan["n"] == 12 and with_nan["rho"] == pytest.approx(expected.statistic)


def test_dead_units_settle_and_the_metrics_read_with_and_without_them(rng):
    run = _analysis(rng, 0, [1.0, 0.5, 0.4, 0.4], [0, 0.3, 0.2, 0.1, 0.05], [0, 1, 3, 3, 3], switches=0.2)
    run["exploration"]["alive_at_end"] = {"units": 7, "min_hamming_normalized": [None, 0.4, 0.3, 0.1, 0.1],
                                          "switches": {"mean_finite": 0.25}, "log_volume": {"mean_finite": 3.0}}
    before = _analysis(rng, 1, [1.0, 0.5, 0.4, 0.4], [0, 0.3, 0.2, 0.1, 0.05], [0, 0, 0, 0, 0], switches=0.1)
    result = open_questions.dead_units({"sgd": [run, before]})["sgd"]
    assert result["final_dead"] == [3, 0] and result["final_dead_per_layer"] == {"a": [3, 0], "b": [0, 0]}
    assert result["dead_by_epoch"] == [2, None]  # the count reached 3 at the record of epoch index 1
    metrics = result["metrics"]
    assert metrics["mean switch proportion"] == {"all": [0.2, 0.1], "alive": [0.25, None]}  # None: not computed
    assert metrics["mean min Hamming distance (normalized)"]["all"][0] == pytest.approx(np.mean([0.3, 0.2, 0.1, 0.05]))
    assert metrics["mean min Hamming distance (normalized)"]["alive"][0] == pytest.approx(np.mean([0.4, 0.3, 0.1, 0.1]))
    assert metrics["mean finite log-volume"]["alive"] == [3.0, None]
    run["exploration"]["alive_at_end"] = {"units": 0, "min_hamming_normalized": None, "switches": None,
                                          "log_volume": None}  # every unit dead
    every_unit_dead = open_questions.dead_units({"sgd": [run]})["sgd"]["metrics"]
    assert all(entry["alive"] == [None] and entry["all"][0] is not None for entry in every_unit_dead.values())


def test_exploration_ends_and_the_loss_plateau(rng):
    losses = [1.0, 0.6, 0.5, 0.402, 0.401, 0.4]
    distances = [0.0, 5.0, 0.5, 0.4, 0.2, 0.04, 0.0]  # records before training, then after epochs 1..6
    result = open_questions.exploration_end(_analysis(rng, 0, losses, distances, [0] * 7, 0.1))
    # The move away from the initialization (5.0) is left out: 0.2 ≥ 10% of 0.5 after epoch 4; 0.402 within 1%.
    assert result == {"exploration_ends": 4, "loss_plateau": 4}


def test_exploration_against_loss_reads_each_runs_metrics(rng):
    analyses = {"sgd": [], "adam": []}
    for seed in range(3):
        for group, scale in (("sgd", 1.0), ("adam", 2.0)):
            distances = scale * rng.uniform(0.1, 1, 5)
            analyses[group].append(_analysis(rng, seed, [1.0, rng.uniform(0.1, 0.5)], distances, [0] * 5, 0.1 * scale))
    result = open_questions.exploration_vs_loss(analyses)
    hamming = result["mean min Hamming distance (normalized)"]
    assert [p["group"] for p in hamming["runs"]] == ["sgd"] * 3 + ["adam"] * 3
    first = analyses["sgd"][0]["exploration"]["min_hamming_normalized"][1:]
    assert hamming["runs"][0]["value"] == pytest.approx(np.mean(first))
    values = [p["value"] for p in hamming["runs"]]
    losses = [p["final_loss"] for p in hamming["runs"]]
    assert hamming["correlation"]["rho"] == pytest.approx(scipy.stats.spearmanr(values, losses).statistic)
    layers = open_questions.layer_exploration(analyses)
    assert layers["adam"]["a"] == {"mean_finite_log_volume": 1.5, "finite_share": pytest.approx(2 / 3)}
