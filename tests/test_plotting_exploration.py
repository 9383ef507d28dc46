"""Fig. 5: exploration drawn per optimizer, with every −∞ log-volume drawn and counted."""

import numpy as np
import pytest

from keras_taylor import experiments, plotting, report
from keras_taylor.exploration import finite_floor

from plotting_helpers import assert_line, colors_by_label, legend_texts, new_axes, same_color


def test_plot_min_hamming_draws_each_optimizer_in_its_color(rng):
    x = np.arange(1, 41) * 50
    runs = {"sgd": (x, rng.uniform(0, 0.2, x.size)), "adam": (x, rng.uniform(0, 0.2, x.size))}
    ax = new_axes()
    lines = plotting.plot_min_hamming(ax, runs)
    for line, (name, (run_x, distance)) in zip(lines, runs.items()):
        assert_line(line, run_x, distance)
        assert same_color(line.get_color(), plotting.OPTIMIZER_COLORS[name])
    assert legend_texts(ax) == ["sgd", "adam"] and list(ax.collections) == []
    other = new_axes()
    plotting.plot_min_hamming(other, {"adam": runs["adam"], "sgd": runs["sgd"]})
    assert colors_by_label(other) == colors_by_label(ax)



def test_plot_switches_draws_sorted_proportions_against_their_rank(rng):
    runs = {"sgd": np.sort(rng.uniform(0, 0.3, 50)), "adam": np.sort(rng.uniform(0, 0.3, 60))[::-1]}
    ax = new_axes()
    lines = plotting.plot_switches(ax, runs)
    for line, (name, proportions) in zip(lines, runs.items()):
        assert_line(line, np.arange(proportions.size), proportions)
        assert same_color(line.get_color(), plotting.OPTIMIZER_COLORS[name])
    assert legend_texts(ax) == ["sgd", "adam"]
    with pytest.raises(ValueError, match="sorted"):
        plotting.plot_switches(new_axes(), {"sgd": rng.permutation(np.linspace(0.1, 0.3, 20))})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        plotting.plot_switches(new_axes(), {"sgd": np.sort(rng.uniform(0.5, 1.5, 20))})


def test_plot_log_volume_draws_minus_infinity_at_the_floor_and_counts_it(rng):
    adam = np.sort(rng.normal(-5.0, 2.0, 40))
    adam[:7] = -np.inf
    sgd = np.sort(rng.normal(-5.0, 2.0, 30))[::-1]  # descending, no −∞
    ax = new_axes()
    adam_line, adam_markers, sgd_line = plotting.plot_log_volume(ax, {"adam": adam, "sgd": sgd})

    finite_low = min(adam[7:].min(), sgd.min())
    marker_x, marker_y = adam_markers.get_offsets().T
    np.testing.assert_array_equal(marker_x, np.arange(7))
    floor = marker_y[0]
    assert np.all(marker_y == floor) and floor < finite_low
    assert ax.get_ylim()[0] <= floor
    assert_line(adam_line, np.arange(7, 40), adam[7:])
    assert_line(sgd_line, np.arange(30), sgd)
    assert adam_line.get_xdata().size + marker_x.size == adam.size  # every entry is drawn
    assert adam_line.get_marker() in ("None", None, "")  # only the −∞ entries get markers
    assert "7 of 40" in adam_markers.get_label() and "−∞" in adam_markers.get_label()
    assert any("7 of 40" in text for text in legend_texts(ax))
    assert same_color(adam_markers.get_facecolor()[0], plotting.OPTIMIZER_COLORS["adam"])


def test_plot_log_volume_draws_minus_infinity_at_the_analysis_finite_floor_of_all_entries(rng):
    # Finite ranges under 10, where a tenth of the range and finite_floor's minimum gap of 1 differ.
    adam = np.sort(rng.uniform(-8.0, -4.0, 40))
    adam[:5] = -np.inf
    sgd = np.sort(rng.uniform(-9.0, -5.0, 20))[::-1]
    sgd[-2:] = -np.inf
    _, adam_markers, _, sgd_markers = plotting.plot_log_volume(new_axes(), {"adam": adam, "sgd": sgd})
    expected = finite_floor(np.concatenate([adam, sgd]))
    assert expected.num_infinite == 7
    np.testing.assert_array_equal(adam_markers.get_offsets()[:, 1], np.full(5, expected.floor))
    np.testing.assert_array_equal(sgd_markers.get_offsets()[:, 1], np.full(2, expected.floor))


def test_plot_log_volume_uses_a_given_floor_only_below_every_finite_value(rng):
    volumes = np.sort(rng.normal(-5.0, 2.0, 25))
    volumes[:3] = -np.inf
    ax = new_axes()
    _, markers = plotting.plot_log_volume(ax, {"momentum": volumes}, floor=-100.0)
    np.testing.assert_array_equal(markers.get_offsets()[:, 1], np.full(3, -100.0))
    with pytest.raises(ValueError, match="floor"):
        plotting.plot_log_volume(new_axes(), {"momentum": volumes}, floor=volumes[3])
    volumes[5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        plotting.plot_log_volume(new_axes(), {"momentum": np.sort(volumes)})


@pytest.mark.parametrize("size, infinite", [(24_288, 3_000), (180, 0), (43, 40), (7, 2)])
def test_plot_log_volume_draws_a_records_quantiles_at_the_ranks_they_come_from(rng, size, infinite):
    """Fig. 5's right panel from a run record: the 101 quantiles of `log_volume_summary` land on the
    sorted curve of every unit (drawn from all units here), and the legend counts every unit."""
    volumes = np.sort(np.concatenate([np.full(infinite, -np.inf), rng.normal(40.0, 8.0, size - infinite)]))
    sample = report.plots._quantile_sample(experiments.log_volume_summary(volumes, 40))
    assert sample.size == size and sample.num_infinite == infinite
    np.testing.assert_array_equal(sample.values, volumes[sample.ranks])
    ax = new_axes()
    artists = plotting.plot_log_volume(ax, {"adam": sample})
    finite = np.isfinite(sample.values)
    assert_line(artists[0], sample.ranks[finite], sample.values[finite])
    if infinite:
        np.testing.assert_array_equal(artists[1].get_offsets()[:, 0], sample.ranks[~finite])
        assert any(f"{infinite} of {size} −∞" in text for text in legend_texts(ax))
    else:
        assert len(artists) == 1


def test_plot_log_volume_refuses_a_sample_whose_ranks_disagree_with_it():
    values = np.array([-np.inf, 1.0, 2.0, 3.0])

    def draw(ranks, size=10, num_infinite=1, sample_values=values):
        plotting.plot_log_volume(new_axes(), {"sgd": plotting.SortedSample(np.asarray(ranks), sample_values,
                                                                          size, num_infinite)})

    draw([0, 3, 6, 9])  # consistent
    draw([0, 3, 3, 9], sample_values=np.array([-np.inf, 1.0, 1.0, 3.0]))  # a rank twice, its value twice
    with pytest.raises(ValueError, match="non-decreasing integer ranks in"):
        draw([0, 6, 3, 9])
    with pytest.raises(ValueError, match=r"ranks in \[0, 10\)"):
        draw([0, 3, 6, 10])
    with pytest.raises(ValueError, match="4 non-decreasing integer ranks"):
        draw([0, 3, 6])
    with pytest.raises(ValueError, match="integer ranks"):
        draw([0.0, 3.5, 6.0, 9.0])
    with pytest.raises(ValueError, match="−∞ exactly at the ranks below num_infinite=4 of 10"):
        draw([0, 3, 6, 9], num_infinite=4)
    with pytest.raises(ValueError, match="one value per rank"):
        draw([0, 3, 3, 9])
    with pytest.raises(ValueError, match="ascending values"):
        draw([0, 3, 6, 9], num_infinite=0, sample_values=np.array([3.0, 2.0, 1.0, 0.0]))
    for size, num_infinite in ((5, 7), (10, -2), (10.0, 1)):
        with pytest.raises(ValueError, match="0 ≤ num_infinite ≤ size"):
            draw([0, 3, 4, 4], size=size, num_infinite=num_infinite)
