"""The ownership mark: which AEP datasets this project created, and for which model.

Every dataset the project creates (its own datasets, and the tables its CTAS queries make) carries the
Catalog tag ``aep_assets/owner`` naming the model. The project replays, drops or deletes only datasets
that carry its model's mark, and refuses, naming the dataset, anything else: on a user's org, what it
did not create is not its to touch. Flows, segments, field groups and schemas are marked by name
(``aep_assets <model> ...``) and description, as they have no tags.
"""

from ..aep import AEPClient

OWNER_TAG = "aep_assets/owner"


class NotOwned(PermissionError):
    """The project was asked to change an AEP object it did not create."""


def owner_tags(model: str) -> dict[str, list[str]]:
    return {OWNER_TAG: [model]}


def owner_of(dataset: dict) -> str | None:
    owners = (dataset.get("tags") or {}).get(OWNER_TAG) or []
    return owners[0] if owners else None


def require_owned(dataset: dict, model: str, action: str) -> None:
    owner = owner_of(dataset)
    if owner != model:
        held = f"model {owner!r}" if owner else "nobody in aep_assets (no aep_assets/owner tag)"
        raise NotOwned(f"Refusing to {action} dataset {dataset.get('name')!r} ({dataset['id']}): it belongs to "
                       f"{held}, not to model {model!r}, and aep_assets never changes what it did not create. "
                       "Read it as a source instead, or give this model's output another name (write_back.dataset).")


def mark_dataset(client: AEPClient, dataset: dict, model: str) -> dict:
    """Tag a dataset this model just created (a CTAS table) as its own."""
    if owner_of(dataset) == model:
        return dataset
    # The tag's name has a slash, which a JSON pointer writes as "~1" (RFC 6901).
    pointer = "/tags/" + OWNER_TAG.replace("~", "~0").replace("/", "~1")
    client.session.json("PATCH", f"/data/foundation/catalog/dataSets/{dataset['id']}",
                        json=[{"op": "add", "path": pointer, "value": [model]}])
    return client.catalog.get_dataset(dataset["id"])


def ensure_owned_dataset(client: AEPClient, name: str, schema_id: str, model: str, *, profile: bool,
                         description: str) -> dict:
    """This model's dataset called ``name``: found if it made it before, created (marked) otherwise. A
    dataset of that name that it did not make is refused, never written to."""
    found = client.catalog.find_dataset(name)
    if found is not None:
        require_owned(found, model, "write to")
        return found
    return client.catalog.create_dataset(name, schema_id, profile=profile, description=description,
                                         tags=owner_tags(model))
