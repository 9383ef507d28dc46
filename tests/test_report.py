"""The report's per-layer exploration numbers, claim rows and analysis.json readers, on hand-made analyses."""

import json

import numpy as np
import pytest

from conftest import assert_close
from keras_taylor import analysis, report


def _exploration(per_layer_values: dict) -> dict:
    """An analysis' exploration record whose layers have the given log-volumes (None = −inf)."""
    per_layer = {}
    for layer, values in per_layer_values.items():
        finite = [v for v in values if v is not None]
        per_layer[layer] = {
            "log_volume": {"mean_finite": float(np.mean(finite)) if finite else None,
                           "num_infinite": len(values) - len(finite)},
            "log_volume_sorted": sorted(finite) if len(finite) == len(values) else
            [None] * (len(values) - len(finite)) + sorted(finite),
        }
    return {"per_layer": per_layer}


def test_top_count_is_the_papers_share_of_a_layer():
    assert report.top_count(180) == 40
    assert report.top_count(50) == 11
    assert report.top_count(2) == 1


def test_per_layer_top_means_over_seeds():
    rng = np.random.default_rng(7)
    seeds = [rng.normal(100, 10, 50) for _ in range(3)]
    per_layer = report.per_layer_exploration([_exploration({"relu_1": list(values)}) for values in seeds])
    record = per_layer["relu_1"]
    assert record["units"] == 50 and record["top_units"] == 11
    tops = [np.sort(values)[-11:].mean() for values in seeds]
    assert record["top_log_volume_mean"]["mean"] == pytest.approx(np.mean(tops))
    assert record["mean_finite_log_volume"]["mean"] == pytest.approx(np.mean([v.mean() for v in seeds]))


def test_a_layer_with_too_few_finite_units_has_no_top_mean():
    values = [None] * 45 + [1.0, 2.0, 3.0, 4.0, 5.0]  # 5 finite < 11 top units
    record = report.per_layer_exploration([_exploration({"relu_1": values})])["relu_1"]
    assert record["top_log_volume_mean"]["n"] == 0 and record["units_with_zero_log_volume"]["mean"] == 45


def _summary(adam_tops: dict, rmsprop_tops: dict) -> dict:
    def entry(tops):
        return {"exploration": {"per_layer": {
            layer: {"top_units": 4, "top_log_volume_mean": {"mean": value, "std": 0.0, "n": 3}}
            for layer, value in tops.items()}}}
    return {"adam": entry(adam_tops), "rmsprop": entry(rmsprop_tops)}


def test_top_per_layer_row_verdicts():
    row = report.top_per_layer_row(_summary({"a": 100.0, "b": 50.0}, {"a": 105.0, "b": 52.0}))
    assert row["verdict"] == "reproduced"
    row = report.top_per_layer_row(_summary({"a": 100.0, "b": 50.0}, {"a": 105.0, "b": 80.0}))
    assert row["verdict"] == "not reproduced (within 10% in 1 of 2 layers)"
    assert "b (top 4): adam 50, rmsprop 80 (38% apart)" in row["measured"]
    row = report.top_per_layer_row({"adam": {}, "rmsprop": {}})
    assert row["verdict"] == "not tested"


def _exponent_summary(layer_means, neuron_means) -> dict:
    return {"regret_exponents": {
        f"layer_{index}": {"layer": {"mean": layer, "std": 0.0, "n": 1}, "neuron": {"mean": neuron, "std": 0.0, "n": 4},
                           "layer_fit_status": [] if layer is None else ["ok"], "layer_fit_sign": [1]}
        for index, (layer, neuron) in enumerate(zip(layer_means, neuron_means))}}


def test_growth_claim_judges_the_layer_scale_else_the_neuron_scale():
    rows = report.claim_rows({"sgd": _exponent_summary([0.5, 0.55], [0.9, 0.1])})
    assert rows[0]["verdict"] == "reproduced (layer-scale means)"
    rows = report.claim_rows({"sgd": _exponent_summary([None, None], [0.5, 0.8])})  # no layer scale recorded
    assert rows[0]["verdict"] == "not reproduced: 1 neuron-scale mean exponents above 0.65, 0 below 0.35"
    assert "neuron means 0.50–0.80" in rows[0]["measured"]


def _analysis_json_curve(rng) -> dict:
    """A layer-scale curve entry of analysis.json whose regret grows like c·N^a (either sign)."""
    rounds = np.unique(np.geomspace(1, int(rng.integers(500, 5000)), 16).astype(np.int64))
    regret = rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 5.0) * rounds ** rng.uniform(0.3, 0.9)
    regret = regret * np.exp(rng.normal(0.0, 0.2, rounds.size))
    loss = rounds * rng.uniform(0.5, 1.0, rounds.size)
    return {"rounds": rounds.tolist(), "cumulative_loss": loss.tolist(),
            "cumulative_taylor_optimum": (loss - regret).tolist(), "regret": regret.tolist(),
            "solver": {"all_converged": True}}


def _fit_record(fit: analysis.GrowthFit) -> dict:
    return {"exponent": fit.exponent, "interval": list(fit.interval), "confidence": fit.confidence,
            "sign": fit.sign, "status": fit.status, "rounds_used": fit.rounds_used.tolist(),
            "coefficient": fit.coefficient}


def test_fit_from_json_reads_the_coefficient_and_recomputes_it_for_files_without_one(rng):
    for _ in range(3):
        curve = report.curve_from_json(json.loads(json.dumps(_analysis_json_curve(rng))), "layer", "dense")
        fit = analysis.fit_growth(curve)
        record = json.loads(json.dumps(_fit_record(fit)))
        read = report.fit_from_json(record)
        assert read.coefficient == fit.coefficient and read.exponent == fit.exponent and read.status == "ok"
        np.testing.assert_array_equal(read.rounds_used, fit.rounds_used)

        older = {key: value for key, value in record.items() if key != "coefficient"}
        recomputed = report.fit_from_json(older, curve)
        assert_close(recomputed.coefficient, fit.coefficient, "float64")
        assert recomputed.exponent == fit.exponent and recomputed.interval == fit.interval
        assert np.isnan(report.fit_from_json(older).coefficient)
        with pytest.raises(ValueError, match="grid"):
            report.fit_from_json({**older, "rounds_used": (fit.rounds_used + 1).tolist()}, curve)
    nan = float("nan")
    unfitted = {"exponent": None, "interval": [nan, nan], "confidence": 0.95, "sign": 0, "status": "sign changes",
                "rounds_used": [10, 20, 40]}
    assert np.isnan(report.fit_from_json(unfitted, curve).coefficient)


SCALES = {"first_look": ("autoencoder", 10000, 1, False), "five_epochs": ("autoencoder", 60000, 5, False),
          "paper": ("autoencoder", 60000, 50, True), "convnet_subset": ("convnet", 10000, 60, False)}


@pytest.mark.parametrize("task,examples,epochs,at_scale", SCALES.values(), ids=SCALES.keys())
def test_the_report_says_whether_it_tests_the_paper(task, examples, epochs, at_scale):
    at_paper_scale, sentence = report.scale_statement(task, examples, epochs)
    assert at_paper_scale is at_scale
    assert f"{examples:,} training examples × {epochs} epoch" in sentence
    assert ("do not test the paper's claims" in sentence) is not at_scale


@pytest.mark.parametrize("rounds", [60, 4690], ids=["each_round", "blocks"])
def test_fig6_losses_are_placed_by_epoch_alike_from_an_analysis_and_its_run_record(rounds, rng):
    losses = rng.uniform(0.5, 2.0, size=rounds)
    analysis = {"run": {"config": {"epochs": 3, "optimizer": "sgd", "seed": 0}}, "analysis_config": {},
                "rounds": {"steps": list(range(rounds)), "loss": losses.tolist()}}
    epochs, means = report.losses_by_epoch(analysis)
    assert len(means) == min(rounds, 100) and 0 < epochs[0] < epochs[-1] < 3
    edges = np.linspace(0, rounds, len(means) + 1).astype(int)
    np.testing.assert_allclose(means, [losses[a:b].mean() for a, b in zip(edges[:-1], edges[1:])])
    np.testing.assert_allclose(epochs, (edges[:-1] + edges[1:]) / 2 * 3 / rounds)
    from_record = report.losses_by_epoch(report.run_record(analysis))
    np.testing.assert_allclose(from_record[0], epochs)
    np.testing.assert_allclose(from_record[1], means)
