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

PROFILE_DATASET = f"{PREFIX} Profiles"
EVENT_DATASET = f"{PREFIX} Experience Events"
SCORE_DATASET = f"{PREFIX} Propensity Scores"

SCORE_FIELDS = {
    "userid": {"title": "User ID", "type": "string", "description": "The profile's ECID."},
    "propensity": {"title": "Propensity", "type": "number",
                   "description": "Calibrated probability that the profile subscribes within the horizon."},
    "propensityScore": {"title": "Propensity score", "type": "integer", "description": "Propensity as 0-100."},
    "propensityPercentile": {"title": "Propensity percentile", "type": "integer",
                             "description": "Rank of the propensity among scored profiles, 0-100."},
    "propensityDecile": {"title": "Propensity decile", "type": "integer", "description": "1 (lowest) to 10."},
    "propensityBand": {"title": "Propensity band", "type": "string", "description": "high, medium or low."},
    "propensityModelVersion": {"title": "Model version", "type": "string"},
    "propensityScoredAt": {"title": "Scored at", "type": "string", "format": "date-time"},
    "propensityExpiresAt": {"title": "Expires at", "type": "string", "format": "date-time",
                            "description": "After this time the score is stale and will be recomputed."},
    **{f"propensityReason{k}": {"title": f"Reason {k}", "type": "string",
                                "description": f"The feature with the {nth} largest contribution to the score."}
       for k, nth in ((1, "first"), (2, "second"), (3, "third"))},
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


def ensure_schemas(client: AEPClient) -> PlatformSchemas:
    """Get or create every field group, schema, identity descriptor and union tag the pipeline uses."""
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
    }
    for role, (cls, fg_body, standard) in plans.items():
        fg, created = client.schemas.ensure_fieldgroup(fg_body)
        if created:
            result.created.append(f"field group '{fg['title']}'")
        schema, created = client.schemas.ensure_schema(
            _schema(f"{PREFIX} {role.title()} schema", cls, [fg["$id"], *standard]))
        if created:
            result.created.append(f"schema '{schema['title']}'")
        _, created = client.schemas.ensure_identity_descriptor(schema["$id"], f"/_{tenant}/userid",
                                                               IDENTITY_NAMESPACE)
        if created:
            result.created.append(f"identity descriptor on '{schema['title']}'")
        result.schemas[role] = client.schemas.enable_profile_union(schema)
    return result


def require_schema(client: AEPClient, role: str) -> dict:
    schema = client.schemas.find_schema(f"{PREFIX} {role.title()} schema")
    if schema is None:
        raise LookupError(f"The {role} schema does not exist in AEP yet; materialise xdm_schemas first.")
    return client.schemas.get_schema(schema["$id"])


def require_dataset(client: AEPClient, name: str, asset: str) -> dict:
    ds = client.catalog.find_dataset(name)
    if ds is None:
        raise LookupError(f"Dataset '{name}' does not exist in AEP yet; materialise {asset} first.")
    return ds
