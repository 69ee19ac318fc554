"""Looking back once an outcome window closes: did the scores come true (score_outcomes), and what did each
audience cause against its control group (audience_uplift)."""

import dagster as dg

from ..pipeline.outcomes import evaluate_outcomes, measure_audience_uplift
from ..resources import AEPResource, StorageResource
from .instance import OUTCOMES, Instance
from .metadata import dagster_metadata, materialized


def build(m: Instance) -> list:
    outcomes_key = m.key("score_outcomes")
    scored = m.key("aep_score_dataset") if m.writes_back else m.key("propensity_scores")

    # Activated audiences are judged on their control groups: the activation runs are read too.
    activated = [m.key("audience_activation")] if m.writes_back else []

    @dg.asset(key=outcomes_key, group_name=m.group(OUTCOMES), deps=[scored, m.event_source, *activated],
              kinds={"adobe", "sql", "polars"},
              check_specs=[dg.AssetCheckSpec(
                  "realised_within_expected", asset=outcomes_key, blocking=False,
                  description="Warns when a decile's or band's realised conversion rate leaves the interval its "
                              "scores expect (Bonferroni-corrected over every decile and band).")])
    def score_outcomes(context: dg.AssetExecutionContext, aep: AEPResource,
                       storage: StorageResource) -> dg.MaterializeResult:
        """Each scoring run, once its outcome window (cutoff, cutoff + goal.outcome_days] has closed: the goal
        events in the window (Query Service, sql/score_outcomes.sql) against the scores: expected and
        realised conversion per decile and band with intervals, calibration in the large, ROC AUC and PR
        AUC. Once audiences were activated with control groups, the forecast is judged on the controls,
        whose outcomes no campaign moved. Runs whose window is still open wait; the outcome sensor
        materialises this when one closes."""
        report = evaluate_outcomes(m.stage(storage, aep=aep))
        if not report.evaluated:
            context.log.info("no scoring run's outcome window has closed yet (present %s)",
                             report.due.present.isoformat())
        return materialized(context, report.metadata(), report.checks())

    assets = [score_outcomes]
    if m.writes_back:
        assets.append(_uplift_asset(m))
    return assets


def _uplift_asset(m: Instance):
    @dg.asset(key=m.key("audience_uplift"), group_name=m.group(OUTCOMES),
              deps=[m.key("score_outcomes"), m.key("audience_activation")], kinds={"polars"})
    def audience_uplift(storage: StorageResource) -> dg.MaterializeResult:
        """Per audience, once its window closed: the activated members' conversion rate against the control
        group's (held out by holdout.share), the absolute and relative uplift with 95 % intervals, and the
        p-value of 'no effect'; with the uplift the control group could detect."""
        uplift = measure_audience_uplift(m.stage(storage))
        return dg.MaterializeResult(metadata=dagster_metadata(uplift.metadata()))

    return audience_uplift
