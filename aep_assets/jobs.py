"""Jobs over the asset graph."""

import dagster as dg

pipeline_job = dg.define_asset_job("aep_pipeline", selection=dg.AssetSelection.all(),
                                   description="Materialise the whole graph, from XDM schemas to activation.")
