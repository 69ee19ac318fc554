"""Where Adobe's OpenAPI specs contradict Adobe's docs or Adobe's own clients, the sandbox follows the docs.

``EXCEPTIONS``: (spec file, "METHOD path" as the spec writes it, check) -> the reason. ``ERROR_STATUSES``: the
error statuses every AEP API may answer, though a spec lists them for only some operations.
"""

ERROR_STATUSES = {
    400: "Adobe's docs give every AEP API a 400 for malformed or invalid input in AEP's error body (the Platform "
         "API troubleshooting guide; reference/aep_api.md §11.1), and the sandbox answers so for values the "
         "docs reject (limit=0, unknown enum values, bodies missing what the docs require), though most "
         "operations of the specs list no 400.",
    404: "Adobe's docs answer an unknown id with 404 in AEP's error body on every API (reference/aep_api.md "
         "§11.1), though many operations of the specs list no 404.",
}

EXCEPTIONS: dict[tuple[str, str, str], str] = {
    ("segmentation.yaml", "POST /audiences", "status_code"):
        "Adobe's Audiences API page, and aepp, have creating an audience answer 200 with the audience; the spec "
        "lists 201.",
    ("segmentation.yaml", "GET /audiences", "response_schema"):
        "The spec's children are a oneOf of PlatformGeneratedAudience and ExternallyGeneratedAudience, neither "
        "of which requires a field or forbids the other's, so every valid audience matches both and fails the "
        "oneOf; test_a_listed_audience_is_a_platform_generated_audience checks each against its own branch.",
    ("segmentation.yaml", "GET /audiences/{AUDIENCE_ID}", "response_schema"):
        "The same oneOf of two branches that every audience matches; each audience is checked against "
        "PlatformGeneratedAudience instead.",
    ("segmentation.yaml", "DELETE /audiences/{AUDIENCE_ID}", "content_type"):
        "A 204 No Content carries no body and so no Content-Type (RFC 9110 §15.3.5); the spec gives it a JSON "
        "content.",
    ("segmentation.yaml", "DELETE /audiences/{AUDIENCE_ID}", "response_schema"):
        "A 204 No Content has no body to conform (RFC 9110 §15.3.5); the spec gives it a JSON schema.",
    ("segmentation.yaml", "GET /segment/definitions", "response_schema"):
        "The spec gives the list the schema of one SegmentDefinition; Adobe's segment definitions guide (and "
        "aepp) list them as {segments: [...], page: {...}, link: {...}} (reference/aep_api.md §10).",
    ("schema-registry.yaml", "GET /{CONTAINER_ID}/descriptors", "response_schema"):
        "Adobe's descriptors guide writes xdm:sourceVersion as the number 1 (reference/aep_api.md §3.6), and "
        "aepp sends it so; the spec types it as a string.",
    ("flow-service.yaml", "GET /flows", "response_schema"):
        "Adobe's dataset-export guide schedules a dataflow with scheduleParams.interval as a number (3, 6, 9, 12 "
        "hours or 1 day; reference/aep_api.md §8.2); the spec types it as a string.",
    ("flow-service.yaml", "GET /flows/{FLOW_ID}", "response_schema"):
        "The same scheduleParams.interval, a number in Adobe's dataset-export guide and a string in the spec.",
}
