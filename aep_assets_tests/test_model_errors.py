"""A model's YAML that does not fit its data fails before anything is spent, naming the key, the expression, the
engine's message and the fix; the org's datasets keep exactly their batches and no table is created."""

from datetime import timedelta

import dagster as dg
import pytest

from aep_assets.components.propensity_model import build_model_defs
from aep_assets.pipeline.ownership import OWNER_TAG
from aep_assets.pipeline.spec import ModelSpec
from aep_assets.resources import build_resources
from aep_sandbox.process import SandboxProcess

from .conftest import client_for
from .org_data import create_org_dataset, create_profile_dataset

FEATURES = [{"name": "purchases", "condition": "eventType = 'commerce.purchases'",
             "value": "commerce.order.priceTotal"},
            {"name": "productViews", "condition": "eventType = 'commerce.productViews'"},
            {"name": "cartAdds", "condition": "eventType = 'commerce.productListAdds'"}]


@pytest.fixture(scope="module")
def org(tmp_path_factory):
    root = tmp_path_factory.mktemp("errors")
    with SandboxProcess(root / "aep") as sb:
        client = client_for(sb)
        data = create_org_dataset(client, name="Error events", n_profiles=300)
        crm = create_profile_dataset(client, data.ecids, name="Error CRM", repeated=0)
        empty, _ = client.catalog.ensure_dataset("Empty events", data.schema_id)
    resources = build_resources({"AEP_SANDBOX_DIR": str(root / "aep"), "AEP_STORAGE_DIR": str(root / "storage")})
    return {"root": root, "data": data, "crm": crm, "empty": empty, "resources": resources}


def spec(org, **changes) -> ModelSpec:
    t = org["data"].today
    base = {"name": "errs", "events": {"datasets": ["Error events"]},
            "goal": {"condition": "eventType = 'commerce.purchases'", "outcome_days": 30},
            "features": {"events": FEATURES},
            "cutoffs": {"train": (t - timedelta(days=60)).date().isoformat(),
                        "test": (t - timedelta(days=30)).date().isoformat()},
            "write_back": {"enabled": False}}
    return ModelSpec.model_validate({**base, **changes})


def failure(org, model: ModelSpec) -> str:
    """Materialise the feature table; the one step failure's message."""
    defs = build_model_defs(model)
    with dg.instance_for_test() as instance:
        result = dg.materialize(list(defs.assets), resources=org["resources"], instance=instance,
                                raise_on_error=False, selection=[dg.AssetKey([model.name, "feature_table"])])
    assert not result.success
    [error] = [e.event_specific_data.error for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    messages = []
    while error is not None:  # the step's error, then what caused it
        messages.append(error.message)
        error = error.cause
    return "\n".join(messages)


def batches_and_owned(org) -> tuple[dict, list]:
    with SandboxProcess(org["root"] / "aep") as sb:
        client = client_for(sb)
        batches = {d["id"]: sorted(client.ingestion.active_batch_ids(d["id"]))
                   for d in (org["data"].dataset, org["crm"], org["empty"])}
        owned = [d["name"] for d in client.catalog.iter_datasets() if OWNER_TAG in d.get("tags", {})]
    return batches, owned


@pytest.fixture
def untouched(org):
    before = batches_and_owned(org)
    yield
    assert batches_and_owned(org) == before


def test_an_invalid_condition_names_its_key_and_the_engines_message(org, untouched):
    features = [FEATURES[0], {**FEATURES[1], "condition": "eventType = = 'commerce.productViews'"}, FEATURES[2]]
    message = failure(org, spec(org, features={"events": features}))
    assert "features.events[1].condition = \"eventType = = 'commerce.productViews'\"" in message
    assert "'Error events'" in message and "Fix it in the model's YAML" in message


def test_a_wrong_field_names_its_key_and_the_nearest_fields(org, untouched):
    features = [*FEATURES[:2], {**FEATURES[2], "value": "commerce.order.priceTotl"}]
    message = failure(org, spec(org, features={"events": features}))
    assert "features.events[2].value = 'commerce.order.priceTotl'" in message
    assert "Nearest fields: commerce.order.priceTotal" in message


def test_a_wrong_identity_names_events_identity_before_any_query_reads_rows(org, untouched):
    message = failure(org, spec(org, events={"datasets": ["Error events"], "identity": "identityMapp['ECID'][0].id"}))
    assert "events.identity = \"identityMapp['ECID'][0].id\"" in message and "identityMap" in message


def test_a_wrong_profile_field_names_its_attribute(org, untouched):
    message = failure(org, spec(org, profile={"dataset": "Error CRM", "attributes": ["loyalty.pointz"]}))
    assert "profile.attributes[0] = 'loyalty.pointz'" in message and "Nearest fields: loyalty.points" in message


def test_several_bad_fragments_are_named_together(org, untouched):
    features = [{**FEATURES[0], "value": "commerce.order.total"}, {**FEATURES[1], "condition": "evenType = 'x'"},
                FEATURES[2]]
    message = failure(org, spec(org, features={"events": features}))
    assert "features.events[0].value" in message and "features.events[1].condition" in message
    assert "Nearest fields: eventType" in message


def test_an_empty_dataset_says_so(org, untouched):
    message = failure(org, spec(org, events={"datasets": ["Empty events"]}))
    assert "events.datasets[0] 'Empty events' is empty" in message
    assert "_acp_system_metadata" not in message


def test_no_event_before_the_cutoffs_says_where_the_data_starts(org, untouched):
    message = failure(org, spec(org, cutoffs={"train": "2001-01-01", "test": "2001-03-01"}))
    assert "before cutoffs.train 2001-01-01" in message and "the data starts" in message


def test_a_goal_that_never_occurs_lists_the_event_types_there_are(org, untouched):
    message = failure(org, spec(org, goal={"condition": "eventType = 'commerce.checkouts'", "outcome_days": 30}))
    assert "goal.condition = \"eventType = 'commerce.checkouts'\" matches none of the" in message
    assert "web.webpagedetails.pageViews" in message


def test_a_value_goal_without_its_value_names_the_key():
    with pytest.raises(ValueError, match=r"goal.kind = 'value' needs goal.value"):
        ModelSpec.model_validate({"name": "v", "events": {"datasets": ["e"]},
                                  "goal": {"kind": "value", "condition": "TRUE"}})
