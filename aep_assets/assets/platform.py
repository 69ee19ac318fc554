"""XDM schemas, field groups, identities and union tags in AEP; a model's source datasets."""

import dagster as dg

from ..pipeline.schemas import ROLES, ensure_schemas
from ..resources import AEPResource
from .instance import PLATFORM, SOURCE, Instance


def build(m: Instance) -> list:
    spec = m.spec
    roles = ROLES if spec.simulated else ("score", "uplift")
    assets: list = []

    @dg.asset(key=m.key("xdm_schemas"), group_name=m.group(PLATFORM), kinds={"adobe", "xdm"})
    def xdm_schemas(context: dg.AssetExecutionContext, aep: AEPResource) -> dg.MaterializeResult:
        """The project's tenant field groups and schemas (for the demo: profile, experience event, score and
        uplift score; for a model over the org's own data: the score and uplift score schemas), their primary
        identities in the model's namespace and Profile union tags, got or created by title."""
        result = ensure_schemas(aep.client(), roles=roles, namespace=spec.events.namespace)
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

    if spec.simulated or m.writes_back:  # a dry run over the org's data needs no schema of ours
        assets.append(xdm_schemas)
    if not spec.simulated:  # the org's own datasets: read, never written
        assets.append(dg.AssetSpec(
            m.key("source_events"), group_name=m.group(SOURCE), kinds={"adobe"},
            description=f"The org's Experience Event datasets this model reads: {', '.join(spec.events.datasets)} "
                        f"(identity {spec.events.identity}, namespace {spec.events.namespace}). Not written by "
                        "aep_assets.", metadata={"datasets": dg.MetadataValue.json(spec.events.datasets)}))
        if spec.profile.dataset:
            assets.append(dg.AssetSpec(
                m.key("source_profiles"), group_name=m.group(SOURCE), kinds={"adobe"},
                description=f"The org's profile dataset {spec.profile.dataset}: attributes for this model's "
                            "features (it does not decide who is scored). Not written by aep_assets."))
    return assets
