"""XDM schemas, field groups, identities and union tags in AEP."""

import dagster as dg

from ..constants import PLATFORM
from ..pipeline.platform import ensure_schemas
from ..resources import AEPResource


@dg.asset(group_name=PLATFORM, kinds={"adobe", "xdm"})
def xdm_schemas(context: dg.AssetExecutionContext, aep: AEPResource) -> dg.MaterializeResult:
    """Tenant field groups, the profile, experience-event and score schemas, their ECID primary
    identities and Profile union tags, got or created by title."""
    result = ensure_schemas(aep.client())
    for line in result.created:
        context.log.info("created %s", line)
    return dg.MaterializeResult(metadata={
        "tenant_id": result.tenant_id,
        "schemas": dg.MetadataValue.json({role: {"$id": s["$id"], "title": s["title"], "version": s["version"],
                                                 "meta:immutableTags": s.get("meta:immutableTags")}
                                          for role, s in result.schemas.items()}),
        "created": dg.MetadataValue.json(result.created),
        "created_count": len(result.created),
    })
