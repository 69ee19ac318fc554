"""With no planted effect, the uplift model does not beat random targeting, and nothing is steered: no uplift
dataset, no persuadable audience, nothing activated by uplift (40,000 profiles, the demo's loop)."""

import pytest

from aep_assets.pipeline.handoff import UpliftScoreRun

from .demo import NAMES
from .uplift_loop import uplift_loop


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return uplift_loop(tmp_path_factory.mktemp("uplift_gate"), profiles=40_000, planted=0.0, windows=1)


def test_a_model_that_does_not_beat_random_steers_nothing(world):
    model, gate = world["model"], world["gate"]
    assert model["sizing_enough"] and model["gated"] is False
    assert model["model_qini_ci_low"] <= 0 and not gate.passed and gate.severity.value == "WARN"
    assert model["oracle_qini"] == 0  # nobody's true uplift differs from anyone's
    scores = world["scores"]
    assert scores["gated"] is False and scores["persuadable"] == 0 and scores["batch_id"] == "none"
    assert world["audiences"]["status"].startswith("no uplift model has beaten random targeting")
    aep = world["aep"]  # nothing of the uplift's was created in AEP
    assert aep["uplift_dataset"] is None and set(aep["segments"].values()) == {None}
    run = UpliftScoreRun.load(world["storage"], NAMES.uplift_scores_pointer, asset="uplift_scores")
    assert not world["storage"].exists(NAMES.uplift_activation(run.scored_at))  # nothing activated by uplift
