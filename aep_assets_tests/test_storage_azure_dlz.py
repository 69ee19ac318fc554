"""The whole graph with ``AEP_EXPORTS=dlz`` on a Data Landing Zone in Azure Blob Storage (Azurite), as most AEP
orgs have it: AEP exports there, and the pipeline reads the exports with the SAS credentials AEP issues."""

import dagster as dg
import pytest
from azure.storage.blob import ContainerClient

from aep_assets.resources import build_resources
from aep_sandbox.azurite import azurite_binary
from aep_sandbox.process import SandboxProcess

from .conftest import client_for
from .demo import ALL_ASSETS
from .test_pipeline_e2e import RUN_CONFIG

needs_azurite = pytest.mark.skipif(azurite_binary() is None, reason="Azurite is not installed (npm install -g azurite; "
                                                                    ".ci/run installs it)")

@needs_azurite
def test_whole_graph_reading_exports_from_an_azure_landing_zone(tmp_path):
    resources = build_resources({"AEP_EXPORTS": "dlz", "AEP_SANDBOX_DLZ": "azure",
                                 "AEP_SANDBOX_DIR": str(tmp_path / "aep"), "AEP_STORAGE_DIR": str(tmp_path / "files")})
    with dg.instance_for_test() as instance:
        result = dg.materialize(ALL_ASSETS, resources=resources, instance=instance, run_config=RUN_CONFIG)
        assert result.success
        export = instance.get_latest_materialization_event(dg.AssetKey(["cmle_demo", "training_export"]))
        uri = export.asset_materialization.metadata["dagster/uri"].value
        metadata = [str(v.value) for event in result.get_asset_materialization_events()
                    for v in event.step_materialization_data.materialization.metadata.values()]
    with SandboxProcess(tmp_path / "aep", dlz="azure") as sb:
        creds = client_for(sb).landing_zone.credentials("dlz_destination")
        account = creds["storageAccountName"]
        exported = [b.name for b in ContainerClient.from_container_url(creds["SASUri"]).list_blobs(
            name_starts_with="aep_assets/cmle_demo/")]

    assert f"/{account}/dlz-destination/aep_assets/cmle_demo/training/" in uri
    assert any(name.endswith(".parquet") and "/training/" in name for name in exported)
    assert any("/scoring/" in name for name in exported)  # the scoring features came the same way
    assert not any("sig=" in value or creds["SASToken"] in value for value in metadata)  # no SAS in metadata
    assert not (tmp_path / "files" / "landing-zone").exists()  # nothing exported to a local directory
    assert (tmp_path / "files" / "cmle_demo" / "models").is_dir()  # the pipeline's own files stay in its storage
