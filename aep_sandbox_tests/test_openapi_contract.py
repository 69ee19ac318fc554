"""Adobe's published OpenAPI specs of the AEP APIs as a test suite for the sandbox (schemathesis).

The specs (``openapi/``, copied from Adobe's repository) drive generated requests, positive and negative, at a
sandbox seeded with one object of each kind, so that requests reach real objects as well as unknown ids:

- no generated request gets a 5xx;
- every operation the sandbox serves answers with a documented status code and content type, and a body that
  conforms to the documented schema, save the exceptions in ``openapi_exceptions.py``, each with its reason;
- an operation it does not serve answers as AEP's gateway does: 404 with the gateway's error body.
"""

import re
import warnings
from pathlib import Path
from urllib.parse import quote

import pyarrow as pa
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import openapi
from schemathesis.checks import content_type_conformance, response_schema_conformance, status_code_conformance

from aep_assets.aep.flow import ExportTarget
from aep_assets.pipeline.schemas import ensure_schemas
from aep_sandbox.process import SandboxProcess

from .conftest import client_for, replace_rows
from .contract import headers
from .openapi_exceptions import ERROR_STATUSES, EXCEPTIONS

SPECS = Path(__file__).parent / "openapi"
BASE_PATHS = {"catalog.yaml": "/data/foundation/catalog", "batch-ingestion.yaml": "/data/foundation/import",
              "schema-registry.yaml": "/data/foundation/schemaregistry", "query-service.yaml": "/data/foundation/query",
              "flow-service.yaml": "/data/foundation/flowservice", "segmentation.yaml": "/data/core/ups",
              "profile.yaml": "/data/core", "identity-service.yaml": "/data/core",
              "sandbox.yaml": "/data/foundation", "data-access.yaml": "/data/foundation/export"}
CHECKS = {"status_code": status_code_conformance, "content_type": content_type_conformance,
          "response_schema": response_schema_conformance}
EXAMPLES = 3  # generated requests per operation and mode; one more with the seeded objects' ids
GATEWAY_404 = "http://ns.adobe.com/aep/errors/GW-4040-404"


def _quiet(spec: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return openapi.from_path(SPECS / spec)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> dict:
    """A sandbox holding one object of each kind the specs' paths name, and those objects' ids by parameter."""
    sb = SandboxProcess(tmp_path_factory.mktemp("openapi")).start()
    client = client_for(sb)
    platform = ensure_schemas(client)
    ds, _ = client.catalog.ensure_dataset("openapi events", platform.schema_id("event"))
    batch = replace_rows(client, ds["id"], [pa.table({
        "_id": ["o1"], "timestamp": pa.array([0], pa.timestamp("us", tz="UTC")),
        f"_{platform.tenant_id}": pa.StructArray.from_arrays([pa.array(["u1"])], names=["userid"])})])
    query = client.query.run("SELECT 1 AS one", name="openapi query")
    pql = f"_{platform.tenant_id}.userid = \"u1\""
    segment, _ = client.segmentation.ensure_segment("openapi audience", pql)
    job = client.segmentation.evaluate([segment["id"]], timeout_s=30)
    flow, _ = client.flows.ensure_dataset_export_flow("openapi export", ds["id"], ExportTarget(kind="dlz", path="x"))
    run = client.flows.export_dataset_now(flow["id"], ds["id"])
    schema_id = platform.schema_id("event")
    fieldgroup = client.schemas.get_schema(schema_id)["allOf"][-1]["$ref"]
    ids = {"DATASET_ID": ds["id"], "datasetId": ds["id"], "id": ds["id"], "BATCH_ID": batch["id"],
           "batchId": batch["id"], "queryid": query["id"], "SEGMENT_ID": segment["id"],
           "AUDIENCE_ID": segment["id"], "SEGMENT_JOB_ID": job["id"], "FLOW_ID": flow["id"],
           "SOURCE_CONNECTION_ID": flow["sourceConnectionIds"][0],
           "TARGET_CONNECTION_ID": flow["targetConnectionIds"][0], "RUN_ID": run,
           "CONNECTION_SPEC_ID": flow.get("connectionSpecId", ""), "FLOW_SPEC_ID": flow["flowSpec"]["id"],
           "SCHEMA_ID": quote(schema_id, safe=""), "FIELD_GROUP_ID": quote(fieldgroup, safe=""),
           "MIXIN_ID": quote(fieldgroup, safe=""), "RESOURCE_ID": quote(schema_id, safe=""),
           "CONTAINER_ID": "tenant", "sandboxName": "prod", "mergePolicyId": "default"}
    yield {"url": sb.url, "headers": headers(client), "ids": {k: v for k, v in ids.items() if v}, "pql": pql}
    sb.stop()


def _operations(spec: str):
    for result in _quiet(spec).get_all_operations():
        try:
            yield result.ok()
        except Exception:  # an operation the spec itself does not define fully (sandbox.yaml has two)
            continue


def _exchanges(seeded: dict, spec: str, op, mode: schemathesis.GenerationMode, *, real_ids: bool):
    """(case, response) of ``EXAMPLES`` generated requests (or one with the seeded ids)."""
    params = {p.name: seeded["ids"][p.name] for p in op.path_parameters if p.name in seeded["ids"]}
    if real_ids and not params:
        return []
    strategy = op.as_strategy(mode, path_parameters=params if real_ids else None)
    found = []

    @settings(max_examples=1 if real_ids else EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate])
    @given(case=strategy)
    def exchange(case) -> None:
        case.headers = {**(case.headers or {}), **seeded["headers"]}
        found.append((case, case.call(base_url=seeded["url"] + BASE_PATHS[spec], timeout=30)))

    try:
        exchange()
    except Exception as exc:  # hypothesis cannot build a request from this operation's definition
        if "Unsatisfiable" not in type(exc).__name__ and "unsatisfiable" not in str(exc).lower():
            raise
    return found


def _header(response, name: str) -> str:
    value = response.headers.get(name) or ""
    return value[0] if isinstance(value, list) else value


def _aep_error(response) -> bool:
    """An error in AEP's body: {type, title, status, detail} with the response's status, or the gateway's."""
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and (body.get("status") == response.status_code or "error_code" in body)


def _served(response) -> bool:
    return not (response.status_code == 404 and GATEWAY_404 in response.text)


class Exchanged:
    """The generated requests of one spec and the sandbox's answers, made once per spec and read by each test
    below: generating them is most of the suite's time, and each test asserts its own property of the same answers.

    An operation the sandbox does not serve gets one plain request instead of generated ones: the gateway answers
    an unserved path before it reads a parameter or a body, so generated values would change nothing (and one
    identity-service body, a ``oneOf`` of two schemas that require nothing, takes hypothesis a minute)."""

    def __init__(self, seeded: dict) -> None:
        self.seeded, self.made = seeded, {}

    def of(self, spec: str) -> list[tuple[object, schemathesis.GenerationMode, bool, str, object, object]]:
        """(operation, mode, real_ids, path, case or None, response) for every operation: both modes, random and
        seeded ids when it is served, the one plain request when it is not."""
        if spec not in self.made:
            made = []
            for op in _operations(spec):
                path, probe = self._probe(spec, op)
                if not _served(probe):
                    made.append((op, schemathesis.GenerationMode.POSITIVE, False, path, None, probe))
                    continue
                made += [(op, mode, real_ids, case.formatted_path, case, response)
                         for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
                         for real_ids in (False, True)
                         for case, response in _exchanges(self.seeded, spec, op, mode, real_ids=real_ids)]
            self.made[spec] = made
        return self.made[spec]

    def _probe(self, spec: str, op) -> tuple[str, requests.Response]:
        """The operation's path with the seeded ids (or a made-up one) and no body, requested once."""
        path = re.sub(r"\{([^}]+)\}", lambda m: self.seeded["ids"].get(m[1], "probe"), op.path)
        return path, requests.request(op.method.upper(), self.seeded["url"] + BASE_PATHS[spec] + path,
                                      headers=self.seeded["headers"], timeout=30)


@pytest.fixture(scope="module")
def exchanged(seeded) -> Exchanged:
    return Exchanged(seeded)


@pytest.mark.parametrize("spec", sorted(BASE_PATHS))
def test_no_generated_request_gets_a_server_error(exchanged, spec):
    errors = [f"{op.method.upper()} {path} -> {response.status_code}: {response.text[:200]}"
              for op, _mode, _real_ids, path, _case, response in exchanged.of(spec) if response.status_code >= 500]
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("spec", sorted(BASE_PATHS))
def test_served_operations_answer_as_documented(exchanged, spec):
    failures = []
    for op, mode, _real_ids, _path, case, response in exchanged.of(spec):
        if mode != schemathesis.GenerationMode.POSITIVE or not _served(response):
            continue
        label = f"{op.method.upper()} {op.path}"
        for name, check in CHECKS.items():
            if (spec, label, name) in EXCEPTIONS:
                continue
            if name == "status_code" and response.status_code in ERROR_STATUSES and _aep_error(response):
                continue
            try:
                case.validate_response(response, checks=[check])
            except (Exception, BaseExceptionGroup) as exc:  # schemathesis raises a group of failures
                lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
                why = [line for line in lines if line.startswith("- ST") or " is not " in line
                       or "required property" in line or line.startswith("Schema at")]
                failures.append(f"{label} [{name}] {response.status_code}: {' / '.join(why[:4])[:300]}")
    assert not failures, "\n".join(sorted(set(failures)))


@pytest.mark.parametrize("spec", sorted(BASE_PATHS))
def test_operations_the_sandbox_does_not_serve_answer_as_the_gateway(exchanged, spec):
    unserved = [response for _op, mode, real_ids, _path, _case, response in exchanged.of(spec)
                if mode == schemathesis.GenerationMode.POSITIVE and not real_ids and not _served(response)]
    for response in unserved:
        body = response.json()
        assert body["status"] == 404 and body["title"] == "Not found"
        assert _header(response, "content-type").startswith("application/json")
        assert _header(response, "x-request-id")


def test_every_exception_names_an_operation_and_a_reason():
    for (spec, label, check), reason in EXCEPTIONS.items():
        method, path = label.split(" ", 1)
        assert spec in BASE_PATHS and check in CHECKS and len(reason) > 40
        assert any(op.method.upper() == method and op.path == path for op in _operations(spec)), label


def test_a_listed_audience_is_a_platform_generated_audience(seeded):
    import jsonschema
    import yaml

    spec = yaml.safe_load((SPECS / "segmentation.yaml").read_text())
    # Its own audience: the generated requests of the other tests may have deleted the seeded one.
    created = requests.post(f"{seeded['url']}/data/core/ups/segment/definitions", headers=seeded["headers"], json={
        "name": "listed audience", "profileInstanceId": "ups", "schema": {"name": "_xdm.context.profile"},
        "expression": {"type": "PQL", "format": "pql/text", "value": seeded["pql"]}}, timeout=30)
    assert created.status_code in (200, 201), created.text
    listed = requests.get(f"{seeded['url']}/data/core/ups/audiences", headers=seeded["headers"], timeout=30).json()
    assert listed["children"]
    schema = {"$ref": "#/components/schemas/PlatformGeneratedAudience", "components": spec["components"]}
    for audience in listed["children"]:
        jsonschema.validate(audience, schema)
        assert audience["type"] == "SegmentDefinition"
