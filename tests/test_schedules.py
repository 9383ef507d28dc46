"""Recording schedules."""

import pytest

from keras_taylor import schedules

SCHEDULE_CASES = [
    pytest.param(schedules.every_step(), list(range(30)), id="every_step"),
    pytest.param(schedules.every_k_steps(7, start=3), [3, 10, 17, 24], id="every_7_from_3"),
    pytest.param(schedules.every_k_steps(2, stop=6), [0, 2, 4], id="every_2_until_6"),
    pytest.param(schedules.at_steps([5, 1, 5, 22]), [1, 5, 22], id="at_steps"),
    pytest.param(schedules.every_epoch(), [], id="epochs_never_by_step"),
]


@pytest.mark.parametrize("schedule, expected", SCHEDULE_CASES)
def test_due_steps(schedule, expected):
    assert [step for step in range(30) if schedule(step)] == expected


def test_log_spaced_matches_rounded_powers_of_ten():
    schedule = schedules.log_spaced(per_decade=5)
    due = [step for step in range(2000) if schedule(step)]
    expected = sorted({0, 1} | {round(10 ** (j / 5)) for j in range(0, 17)})
    assert due == [value for value in expected if value < 2000]
    # Dense early, sparse late: about per_decade points per factor of ten.
    assert 4 <= sum(1 for step in due if 100 <= step < 1000) <= 6


def test_log_spaced_with_start_offsets_the_grid():
    schedule = schedules.log_spaced(per_decade=4, start=10)
    assert [step for step in range(30) if schedule(step)] == [10, 11, 12, 13, 16, 20, 28]  # offsets 0, 1, 2, 3, 6, 10, 18


def test_epoch_schedule():
    schedule = schedules.every_epoch(k=3, start=1, stop=9)
    assert [epoch for epoch in range(12) if schedule.epoch_due(epoch)] == [1, 4, 7]


@pytest.mark.parametrize("schedule", [case.values[0] for case in SCHEDULE_CASES] + [schedules.log_spaced(7, 2, 90)],
                         ids=[case.id for case in SCHEDULE_CASES] + ["log_spaced"])
def test_config_round_trip(schedule):
    assert schedules.Schedule.from_config(schedule.to_config()) == schedule


@pytest.mark.parametrize(
    "make, message",
    [
        pytest.param(lambda: schedules.every_k_steps(0), "every >= 1", id="zero_period"),
        pytest.param(lambda: schedules.every_step(start=5, stop=2), "start <= stop", id="stop_before_start"),
        pytest.param(lambda: schedules.Schedule("sometimes"), "kind='sometimes'", id="unknown_kind"),
        pytest.param(lambda: schedules.log_spaced(0), "per_decade >= 1", id="zero_density"),
    ],
)
def test_bad_schedules_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()
