"""The pipeline's XDM resources in AEP: tenant field groups, schemas, identities, union tags, datasets."""

from dataclasses import dataclass, field

from ..aep import AEPClient

PREFIX = "aep_assets"
PROFILE_CLASS = "https://ns.adobe.com/xdm/context/profile"
EVENT_CLASS = "https://ns.adobe.com/xdm/context/experienceevent"
STANDARD_PROFILE_GROUPS = (
    "https://ns.adobe.com/xdm/context/profile-person-details",
    "https://ns.adobe.com/xdm/context/profile-personal-details",
    "https://ns.adobe.com/xdm/mixins/profile/profile-loyalty-details",
)
STANDARD_EVENT_GROUPS = (
    "https://ns.adobe.com/xdm/context/experienceevent-web",
    "https://ns.adobe.com/xdm/context/experienceevent-directmarketing",
)
IDENTITY_NAMESPACE = "ECID"
ROLES = ("profile", "event", "score", "uplift")

SCORE_FIELDS = {
    "userid": {"title": "User ID", "type": "string",
               "description": "The profile's identity value in the model's namespace (the primary identity)."},
    "propensity": {"title": "Propensity", "type": "number",
                   "description": "Calibrated probability of the model's goal within its outcome window (for a "
                                  "churn model: that no goal event occurs)."},
    "predictedValue": {"title": "Predicted value", "type": "number",
                       "description": "A value model's forecast of the goal's value over its outcome window; "
                                      "its percentile, decile and band rank this value."},
    "propensityScore": {"title": "Propensity score", "type": "integer", "description": "Propensity as 0-100."},
    "propensityPercentile": {"title": "Propensity percentile", "type": "integer",
                             "description": "Rank of the propensity among scored profiles, 0-100."},
    "propensityDecile": {"title": "Propensity decile", "type": "integer", "description": "1 (lowest) to 10."},
    "propensityBand": {"title": "Propensity band", "type": "string", "description": "high, medium or low."},
    "propensityGroup": {"title": "Holdout group", "type": "string",
                        "description": "treatment (activated with its audience) or control (held out to measure "
                                       "the audience's uplift)."},
    "propensityModelVersion": {"title": "Model version", "type": "string"},
    "propensityScoredAt": {"title": "Scored at", "type": "string", "format": "date-time"},
    "propensityExpiresAt": {"title": "Expires at", "type": "string", "format": "date-time",
                            "description": "After this time the score is stale and will be recomputed."},
    **{f"propensityReason{k}": {"title": f"Reason {k}", "type": "string",
                                "description": f"The feature with the {nth} largest contribution to the score."}
       for k, nth in ((1, "first"), (2, "second"), (3, "third"))},
}


UPLIFT_FIELDS = {
    "userid": SCORE_FIELDS["userid"],
    "upliftScore": {"title": "Uplift score", "type": "number",
                    "description": "Predicted change in the probability of the model's goal that activating the "
                                   "profile causes (an uplift model learnt from the control groups)."},
    "upliftBand": {"title": "Uplift band", "type": "string",
                   "description": "persuadable (the highest predicted uplift), other, or none (no uplift model has "
                                  "beaten random targeting: nothing is steered)."},
    "upliftGroup": {"title": "Uplift holdout group", "type": "string",
                    "description": "treatment or control, as in propensityGroup for the same scoring run."},
    "upliftModelVersion": {"title": "Uplift model version", "type": "string"},
    "upliftScoredAt": {"title": "Uplift scored at", "type": "string", "format": "date-time"},
}


def _fieldgroup(title: str, tenant: str, extends: str, fields: dict) -> dict:
    return {
        "title": title, "description": f"{title}, managed by {PREFIX}.", "type": "object",
        "meta:intendedToExtend": [extends],
        "definitions": {"customFields": {"properties": {f"_{tenant}": {"type": "object", "properties": fields}}}},
        "allOf": [{"$ref": "#/definitions/customFields"}],
    }


def _schema(title: str, cls: str, groups: list[str]) -> dict:
    return {"title": title, "description": f"{title}, managed by {PREFIX}.", "type": "object",
            "allOf": [{"$ref": cls}] + [{"$ref": g} for g in groups]}


@dataclass
class PlatformSchemas:
    tenant_id: str
    schemas: dict[str, dict] = field(default_factory=dict)  # role -> schema
    created: list[str] = field(default_factory=list)

    def schema_id(self, role: str) -> str:
        return self.schemas[role]["$id"]


def schema_title(role: str, namespace: str = IDENTITY_NAMESPACE) -> str:
    """Score schemas exist once per identity namespace: scores go back with the model's namespace."""
    suffix = "" if namespace == IDENTITY_NAMESPACE else f" ({namespace})"
    return f"{PREFIX} {role.title()} schema{suffix}"


def ensure_schemas(client: AEPClient, *, roles: tuple[str, ...] = ROLES,
                   namespace: str = IDENTITY_NAMESPACE) -> PlatformSchemas:
    """Get or create the field groups, schemas, identity descriptors and union tags of ``roles``: all three
    for the simulated demo, only the score schema for a model over the org's own datasets."""
    tenant = client.schemas.tenant_id()
    result = PlatformSchemas(tenant)
    identity = {"userid": {"title": "User ID", "type": "string",
                           "description": "The profile's ECID, the primary identity."}}
    plans = {
        "profile": (PROFILE_CLASS, _fieldgroup(f"{PREFIX} Profile identity", tenant, PROFILE_CLASS, identity),
                    STANDARD_PROFILE_GROUPS),
        "event": (EVENT_CLASS, _fieldgroup(f"{PREFIX} Event identity", tenant, EVENT_CLASS, identity),
                  STANDARD_EVENT_GROUPS),
        "score": (PROFILE_CLASS, _fieldgroup(f"{PREFIX} Propensity score", tenant, PROFILE_CLASS, SCORE_FIELDS), ()),
        "uplift": (PROFILE_CLASS, _fieldgroup(f"{PREFIX} Uplift score", tenant, PROFILE_CLASS, UPLIFT_FIELDS), ()),
    }
    for role, (cls, fg_body, standard) in plans.items():
        if role not in roles:
            continue
        fg, created = client.schemas.ensure_fieldgroup(fg_body)
        if created:
            result.created.append(f"field group '{fg['title']}'")
        schema, created = client.schemas.ensure_schema(
            _schema(schema_title(role, namespace), cls, [fg["$id"], *standard]))
        if created:
            result.created.append(f"schema '{schema['title']}'")
        _, created = client.schemas.ensure_identity_descriptor(schema["$id"], f"/_{tenant}/userid", namespace)
        if created:
            result.created.append(f"identity descriptor on '{schema['title']}'")
        result.schemas[role] = client.schemas.enable_profile_union(schema)
    return result


def require_schema(client: AEPClient, role: str, namespace: str = IDENTITY_NAMESPACE) -> dict:
    schema = client.schemas.find_schema(schema_title(role, namespace))
    if schema is None:
        raise LookupError(f"The {role} schema does not exist in AEP yet; materialise xdm_schemas first.")
    return client.schemas.get_schema(schema["$id"])

