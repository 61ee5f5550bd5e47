from __future__ import annotations

import pytest

from kgreason.training.stoppers import EarlyStopper, larger_is_better_for


def feed(stopper: EarlyStopper, values: list[float]) -> int | None:
    """Report values at epochs 1, 2, ...; return the epoch at which the stopper says stop (None: never)."""
    for epoch, v in enumerate(values, start=1):
        if stopper.report(epoch, v):
            return epoch
    return None


def test_documented_example() -> None:
    s = EarlyStopper(patience=2)
    assert feed(s, [0.5, 0.6, 0.59, 0.58, 0.9]) == 4
    assert (s.best_value, s.best_epoch, s.num_bad_evaluations) == (0.6, 2, 2)


def test_improvement_resets_the_count_and_ties_do_not_improve() -> None:
    s = EarlyStopper(patience=2)
    assert feed(s, [0.5, 0.4, 0.6, 0.6, 0.7, 0.7, 0.7]) == 7
    assert s.best_epoch == 5


def test_relative_delta() -> None:
    # relative 10%: from 0.5 an improvement needs > 0.55
    s = EarlyStopper(patience=2, delta=0.1, relative=True)
    assert feed(s, [0.5, 0.54, 0.53]) == 3 and s.best_value == 0.5
    s = EarlyStopper(patience=2, delta=0.1, relative=True)
    assert feed(s, [0.5, 0.56, 0.6]) is None and s.best_value == 0.56


def test_absolute_delta() -> None:
    s = EarlyStopper(patience=1, delta=0.05, relative=False)
    assert feed(s, [0.5, 0.56, 0.6]) == 3 and s.best_value == 0.56


def test_smaller_is_better() -> None:
    s = EarlyStopper(patience=2, larger_is_better=False)
    assert feed(s, [10.0, 8.0, 9.0, 8.5]) == 4 and s.best_value == 8.0
    assert larger_is_better_for("valid.both.realistic.mrr")
    assert not larger_is_better_for("valid.both.realistic.mr")
    assert not larger_is_better_for("loss")


def test_nan_is_never_an_improvement_and_state_round_trip() -> None:
    s = EarlyStopper(patience=3)
    feed(s, [0.3, float("nan")])
    t = EarlyStopper(patience=3)
    t.load_state_dict(s.state_dict())
    assert (t.best_value, t.num_bad_evaluations, t.num_evaluations) == (0.3, 1, 2)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        EarlyStopper(patience=0)
    with pytest.raises(ValueError):
        EarlyStopper(delta=-0.1)
