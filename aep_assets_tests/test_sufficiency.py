"""Data sufficiency: a model that cannot be trained well says what is short and how to fix it, before it trains."""

from datetime import timedelta

import polars as pl
import pytest

from aep_assets.ml.design import TemporalSplit
from aep_assets.ml.feature_set import LABEL
from aep_assets.pipeline.feature_builds import resolve_feature_set
from aep_assets.pipeline.naming import Names
from aep_assets.pipeline.sources import resolve_sources
from aep_assets.pipeline.spec import ModelSpec, Sufficiency
from aep_assets.pipeline.sufficiency import check_source, check_training_rows

from .org_data import DAYS, create_org_dataset

FLOOR = Sufficiency(min_goal_profiles=5, min_non_goal_profiles=5)


def _rows(train: list[int], test: list[int]) -> pl.DataFrame:
    return pl.DataFrame({"split": ["train"] * len(train) + ["test"] * len(test), LABEL: train + test})


def test_enough_goal_and_non_goal_profiles_pass():
    assert check_training_rows(_rows([1] * 6 + [0] * 6, [1] * 5 + [0] * 9), FLOOR).passed


@pytest.mark.parametrize(("train", "test", "problem"), [
    ([1] * 3 + [0] * 20, [1] * 6 + [0] * 6, "3 train profiles reach the goal, fewer than "
                                            "sufficiency.min_goal_profiles (5)"),
    ([1] * 6 + [0] * 2, [1] * 6 + [0] * 6, "2 train profiles do not reach the goal, fewer than "
                                           "sufficiency.min_non_goal_profiles (5)"),
    ([1] * 6 + [0] * 6, [0] * 12, "no test profile reaches the goal in its outcome window: check goal.condition"),
    ([1] * 12, [1] * 6 + [0] * 6, "every train profile reaches the goal"),
])
def test_too_few_goals_or_non_goals_name_the_split_and_the_fix(train, test, problem):
    result = check_training_rows(_rows(train, test), FLOOR)
    assert not result.passed and any(problem in p for p in result.problems), result.problems


@pytest.fixture(scope="module")
def org(sandbox):
    from .conftest import client_for

    client = client_for(sandbox)
    return client, create_org_dataset(client, name="Sufficiency events", n_profiles=400, seed=9)


def _check(org, *, train_days: int = 60, test_days: int = 30, horizon: int = 30, **spec):
    client, data = org
    model = ModelSpec.model_validate({"name": "enough", "events": {"datasets": ["Sufficiency events"]},
                                      "goal": {"condition": "eventType = 'commerce.purchases'",
                                               "outcome_days": horizon}, **spec})
    design = TemporalSplit(data.today - timedelta(days=train_days), data.today - timedelta(days=test_days), horizon)
    sources = resolve_sources(client, model, Names(model.name))
    fs = resolve_feature_set(client, model, sources, design.train_cutoff)
    return check_source(client, model, fs, sources, design)


def test_a_healthy_source_passes(org):
    result = _check(org)
    assert result.passed, result.problems
    assert result.facts["null_identity_share"] == 0.0


def test_a_history_shorter_than_the_longest_window_is_named(org):
    result = _check(org, train_days=DAYS - 20, test_days=DAYS - 60, features={"windows_days": [7, 90]})
    assert any("less than the longest window (90 days) before cutoffs.train" in p and "or later" in p
               for p in result.problems), result.problems


def test_an_outcome_window_that_has_not_closed_is_named(org):
    result = _check(org, train_days=40, test_days=10, horizon=30)
    assert any("before the test outcome window closes" in p and "move cutoffs.test to" in p
               for p in result.problems), result.problems


def test_cutoffs_before_the_data_have_no_recent_events(org):
    result = _check(org, train_days=DAYS + 60, test_days=DAYS + 20, features={"windows_days": [7], "events": [
        {"name": "purchases", "condition": "eventType = 'commerce.purchases'"}]})
    assert any("no events in the 30 days before cutoffs.train" in p for p in result.problems), result.problems
    assert any("no events in the 30 days before cutoffs.test" in p for p in result.problems), result.problems


def test_a_feature_event_that_never_occurs_is_named(org):
    result = _check(org, features={"events": [
        {"name": "purchases", "condition": "eventType = 'commerce.purchases'"},
        {"name": "checkouts", "condition": "eventType = 'commerce.checkouts'"}]})
    assert result.problems == ["feature events ['checkouts'] never occur before cutoffs.train; fix their condition "
                               "in features.events or remove them"]


def test_an_identity_that_is_mostly_null_is_named_with_the_fix(org):
    result = _check(org, events={"datasets": ["Sufficiency events"], "identity": "identityMap['CRMID'][0].id"})
    assert any("events.identity \"identityMap['CRMID'][0].id\" is NULL on 100% of events" in p
               for p in result.problems), result.problems
