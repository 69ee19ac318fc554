"""Catalog: datasets and batches, with pagination and get-or-create by name."""

from collections.abc import Iterator

from .errors import NotFound
from .polling import prefer_wait
from .session import AEPSession

BASE = "/data/foundation/catalog"
PAGE = 100


class Catalog:
    def __init__(self, session: AEPSession) -> None:
        self.session = session

    def _iter(self, collection: str, params: dict) -> Iterator[tuple[str, dict]]:
        start = 0
        while True:
            page = self.session.json("GET", f"{BASE}/{collection}", params={**params, "limit": PAGE, "start": start})
            items = list((page or {}).items())
            yield from items
            if len(items) < PAGE:
                return
            start += PAGE

    def iter_datasets(self, **filters: str) -> Iterator[dict]:
        for ds_id, ds in self._iter("dataSets", filters):
            yield {"id": ds_id, **ds}

    def find_dataset(self, name: str) -> dict | None:
        matches = [d for d in self.iter_datasets(name=name) if d.get("name") == name]
        return min(matches, key=lambda d: d.get("created", 0)) if matches else None

    def get_dataset(self, dataset_id: str) -> dict:
        data = self.session.json("GET", f"{BASE}/dataSets/{dataset_id}")
        return {"id": dataset_id, **data[dataset_id]}

    def create_dataset(self, name: str, schema_id: str, *, profile: bool = False, description: str = "",
                       tags: dict[str, list[str]] | None = None) -> dict:
        tags = {**({"unifiedProfile": ["enabled:true"], "unifiedIdentity": ["enabled:true"]} if profile else {}),
                **(tags or {})}
        body = {"name": name, "description": description,
                "schemaRef": {"id": schema_id, "contentType": "application/vnd.adobe.xed+json;version=1"},
                "fileDescription": {"persisted": True, "containerFormat": "parquet", "format": "parquet"},
                "tags": tags}
        ref = self.session.json("POST", f"{BASE}/dataSets", params={"requestDataSource": "false"}, json=body)
        return self.get_dataset(ref[0].split("/")[-1])

    def ensure_dataset(self, name: str, schema_id: str, *, profile: bool = False, description: str = "",
                       tags: dict[str, list[str]] | None = None) -> tuple[dict, bool]:
        """Dataset names are not unique in AEP, so look the name up before creating."""
        found = self.find_dataset(name)
        if found:
            return found, False
        return self.create_dataset(name, schema_id, profile=profile, description=description, tags=tags), True

    def resolve_dataset(self, id_or_name: str) -> dict:
        """A dataset named in a model's YAML, by id or by name."""
        try:
            return self.get_dataset(id_or_name)
        except NotFound:
            pass
        found = self.find_dataset(id_or_name)
        if found is None:
            raise LookupError(f"No dataset with id or name {id_or_name!r} in this sandbox; check events.datasets "
                              "(or profile.dataset) in the model's YAML against Catalog.")
        return found

    def delete_dataset(self, dataset_id: str) -> None:
        self.session.request("DELETE", f"{BASE}/dataSets/{dataset_id}")

    @staticmethod
    def table_name(dataset: dict) -> str:
        """The Query Service table of a dataset: its ``adobe/pqs/table`` tag."""
        return dataset["tags"]["adobe/pqs/table"][0]

    def iter_batches(self, dataset_id: str, status: str | None = None, **filters: str) -> Iterator[dict]:
        params = {"dataSet": dataset_id, **filters}
        if status:
            params["status"] = status
        for batch_id, batch in self._iter("batches", params):
            yield {"id": batch_id, **batch}

    def get_batch(self, batch_id: str, wait_s: float = 0) -> dict:
        data = self.session.json("GET", f"{BASE}/batches/{batch_id}", headers=prefer_wait(wait_s))
        return {"id": batch_id, **data[batch_id]}
