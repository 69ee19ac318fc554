"""A third-party AEP client, Adobe's ``aepp`` (the library the reference notebooks use), pointed at the sandbox
through the reference workflow, unchanged: schemas, datasets, ingestion, the Catalog listing that reads
``classification``, an interactive Query Service session that first reads the Query Accelerated Store, and a
dataset export to the Data Landing Zone read back with the SAS credentials, as on an org whose DLZ is on Azure.

Only the endpoints differ from a real org: aepp has no setting for them, so the test sets the global endpoint and
the IMS endpoints of its configuration objects to the sandbox's."""

import configparser

import aepp
import pytest

from aep_assets.aep.polling import poll
from aep_sandbox.process import SandboxProcess

from .conftest import client_for
from .test_sandbox_landing_zone import exported_rows, needs_azurite

SCOPES = "openid,AdobeID,read_organizations,additional_info.projectedProductContext,session"


@pytest.fixture(scope="module")
def org(tmp_path_factory):
    with SandboxProcess(tmp_path_factory.mktemp("aepp"), dlz="azure") as sandbox:
        creds = sandbox.credentials
        conn = aepp.configure(org_id=creds.org_id, client_id=creds.client_id, secret=creds.client_secret,
                              scopes=SCOPES, sandbox="prod", environment="support", endpoint=sandbox.url,
                              connectInstance=True)
        ims = {"imsEndpoint": sandbox.url, "oauthTokenEndpointV2": f"{sandbox.url}/ims/token/v3"}
        aepp.config.endpoints["global"] = sandbox.url
        aepp.config.config_object.update(ims)
        conn.imsEndpoint, conn.oauthEndpointV2 = ims["imsEndpoint"], ims["oauthTokenEndpointV2"]
        conn.__configObject__.update(ims)
        yield {"conn": conn, "sandbox": sandbox, "tmp": tmp_path_factory.mktemp("aepp-config")}


@pytest.fixture(scope="module")
def datasets(org):
    """Week 1: a field group, an event and a profile schema with a primary identity, enabled for Profile, and
    their datasets, each filled by a batch."""
    from aepp import catalog, ingestion, schema

    conn = org["conn"]
    reg = schema.Schema(config=conn)
    tenant = reg.getTenantId()
    fg = reg.createFieldGroup({
        "title": "aepp reference identity", "type": "object",
        "meta:intendedToExtend": ["https://ns.adobe.com/xdm/context/experienceevent",
                                  "https://ns.adobe.com/xdm/context/profile"],
        "definitions": {"ids": {"properties": {f"_{tenant}": {"type": "object", "properties": {
            "userid": {"type": "string"}, "propensity": {"type": "number"}}}}}},
        "allOf": [{"$ref": "#/definitions/ids"}]})
    events = reg.createExperienceEventSchema(name="aepp reference events", fieldGroupIds=[fg["$id"]])
    profiles = reg.createProfileSchema(name="aepp reference profiles", fieldGroupIds=[fg["$id"]])
    for s in (events, profiles):
        reg.createDescriptor(sourceSchema=s["$id"], sourceProperty=f"/_{tenant}/userid", namespace="ECID",
                             primary=True)
        reg.enableSchemaForRealTime(s["$id"])
    cat = catalog.Catalog(config=conn)
    event_ds = cat.createDataSet(name="aepp reference events", schemaId=events["$id"])[0].split("/")[-1]
    profile_ds = cat.createDataSet(name="aepp reference profiles", schemaId=profiles["$id"],
                                   profileEnabled=True)[0].split("/")[-1]
    ing = ingestion.DataIngestion(config=conn)
    rows = {event_ds: [{"_id": f"e{i}", "timestamp": "2026-11-01T00:00:00Z", "eventType": "commerce.purchases",
                        f"_{tenant}": {"userid": f"u{i % 3}"}} for i in range(6)],
            profile_ds: [{f"_{tenant}": {"userid": f"u{i}", "propensity": p}}
                         for i, p in enumerate([0.2, 0.7, 0.9])]}
    for ds_id, records in rows.items():
        batch = ing.createBatch(datasetId=ds_id, format="json", multiline=True)
        ing.uploadSmallFile(batchId=batch["id"], datasetId=ds_id, filePath="rows.json", data=records)
        ing.uploadSmallFileFinish(batchId=batch["id"], action="COMPLETE")
        poll(lambda _wait, b=batch["id"]: cat.getBatch(b)[b], lambda b: b["status"] == "success", what="batch",
             timeout_s=60)
    return {"tenant": tenant, "events": event_ds, "profiles": profile_ds}


def test_the_catalog_listing_reads_each_datasets_classification(org, datasets):
    from aepp import catalog

    infos = catalog.Catalog(config=org["conn"]).getDatasetsInfos().set_index("id")
    assert infos.at[datasets["events"], "dataBehavior"] == "time-series"
    assert infos.at[datasets["profiles"], "dataBehavior"] == "record"
    assert bool(infos.at[datasets["profiles"], "profileEnabled"]) is True


def test_an_interactive_session_opens_on_the_accelerated_store_and_reads_true_counts(org, datasets):
    from aepp import queryservice

    ours = client_for(org["sandbox"])
    seg, _ = ours.segmentation.ensure_segment("aepp high", f"_{datasets['tenant']}.propensity > 0.5")
    ours.segmentation.wait_for_job(ours.segmentation.create_job([seg["id"]])["id"], timeout_s=60)

    qs = queryservice.QueryService(config=org["conn"])
    session = queryservice.InteractiveQuery2(qs.connection(), sslmode="require")  # reads merge policies, namespaces
    try:
        assert session.default_merge_policy_id == ours.session.json(
            "GET", "/data/core/ups/config/mergePolicies")["children"][0]["id"]
        assert session._mapping_namespace_id_name == {session._df_namespaces_mapping.at[0, "NAMESPACE_ID"]: "ecid"}
        spread = session.queryNamespacesDistribution()
        assert spread.to_dict("records") == [{"NAMESPACE_DESCRIPTION": "ecid", "COUNT_OF_PROFILES": 3,
                                              "COUNT_OF_SINGLE_IDENTITY_PROFILES": 3, "COUNT_OF_IDENTITIES": 3}]
        trend = session.queryAudiencePopulationTrend()
        assert trend[["AUDIENCE_NAME", "COUNT_OF_PROFILES", "COUNT_OF_CALCULATED_REALIZED_PROFILES"]].to_dict(
            "records") == [{"AUDIENCE_NAME": "aepp high", "COUNT_OF_PROFILES": 2,
                            "COUNT_OF_CALCULATED_REALIZED_PROFILES": 2}]
        assert session.queryProfilesTrend()["COUNT_OF_PROFILES"].tolist() == [3]
        table = ours.catalog.table_name(ours.catalog.get_dataset(datasets["events"]))
        assert session.query(f"SELECT count(*) AS n FROM {table}").iloc[0, 0] == 6
    finally:
        session.close()


@needs_azurite
def test_a_dataset_export_lands_in_the_azure_landing_zone_and_reads_back_with_the_sas(org, datasets):
    from aepp import exportDatasetToDataLandingZone, flowservice
    from azure.storage.blob import ContainerClient

    config_file = org["tmp"] / "aepp.ini"
    parser = configparser.ConfigParser()
    parser["Platform"] = {"dataflow_id": ""}  # the notebooks' config.ini, before the first export
    with open(config_file, "w") as f:
        parser.write(f)
    exporter = exportDatasetToDataLandingZone.ExportDatasetToDataLandingZone(config=org["conn"])
    # The helper's own steps: base, source and target connections and the flow, then the ad hoc run. (Its
    # createDataFlowRunIfNotExists then waits with getRun(...)["items"], but aepp 0.6.0's getRun already returns
    # the items, so that wait never ends on any server; the notebooks poll the runs themselves, as here.)
    flow_id = exporter.createDataFlow(datasets["events"], "gzip", "parquet", "aepp-export", False, str(config_file),
                                      "aepp reference export")
    ran = exporter.retryOnNotReadyException(dataflow_id=flow_id, dataset_id=datasets["events"])
    run_id = ran["destinations"][0]["datasets"][0]["statusURL"].rsplit("/", 1)[-1]
    fs = flowservice.FlowService(config=org["conn"])
    run = poll(lambda _wait: fs.getRun(runId=run_id)[0], lambda r: r["metrics"]["statusSummary"]["status"] == "success",
               what="export run", timeout_s=60)
    assert run["metrics"]["recordSummary"]["outputRecordCount"] == 6
    creds = fs.getLandingZoneCredential("dlz_destination")  # containerName, SASToken, SASUri, ...
    _, rows = exported_rows(ContainerClient.from_container_url(creds["SASUri"]), f"aepp-export/{datasets['events']}/")
    assert rows == 6
