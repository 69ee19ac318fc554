"""Export AEP datasets to storage through a Flow Service dataset export flow."""

from dataclasses import dataclass
from datetime import UTC, datetime

from ..aep import AEPClient
from ..storage import Storage


@dataclass
class Export:
    flow: dict
    run: dict
    keys: list[str]
    folder: str
    rows: int

    @property
    def run_id(self) -> str:
        return self.run["id"]


def export_dataset(client: AEPClient, storage: Storage, dataset_id: str, *, flow_name: str, path: str,
                   timeout_s: float = 3600) -> Export:
    """Run the dataset's export flow ad hoc and return the files this run wrote.

    AEP names the folder ``{path}/{datasetId}/exportTime=YYYYMMDDHHMM/`` after the run's start.
    """
    target, prefix = storage.export_target(path)
    # Two runs of one flow within a minute share a folder; this run's files are the ones that are new.
    earlier = set(storage.list_keys(f"{prefix}/{dataset_id}"))
    flow, _ = client.flows.ensure_dataset_export_flow(flow_name, dataset_id, target)
    client.flows.delete_dataset_export_flows(flow_name, keep_dataset_id=dataset_id)
    run = client.flows.wait_for_run(client.flows.export_dataset_now(flow["id"], dataset_id), timeout_s=timeout_s)
    started = datetime.fromtimestamp(run["metrics"]["durationSummary"]["startedAtUTC"] / 1000, UTC)
    folder = f"{prefix}/{dataset_id}/exportTime={started:%Y%m%d%H%M}"
    keys = [k for k in storage.list_keys(folder) if k.endswith(".parquet") and k not in earlier]
    expected = run["metrics"]["fileSummary"]["outputFileCount"]
    if len(keys) < expected:
        raise FileNotFoundError(f"Export run {run['id']} reports {expected} files but {storage.uri(folder)} holds "
                                f"{len(keys)}: the export went somewhere this storage cannot read. Against real "
                                "AEP, use S3 storage (AEP_STORAGE=s3) so AEP's S3 destination writes into it.")
    return Export(flow, run, keys, folder, run["metrics"]["recordSummary"]["outputRecordCount"])
