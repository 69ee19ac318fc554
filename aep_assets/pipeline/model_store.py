"""Models in storage: LightGBM's text format plus JSON, never pickled. Every version is kept."""

import json

from ..ml.train import TrainedModel, load_booster
from ..storage import Storage


def save_model(storage: Storage, model: TrainedModel, pointer: str, training_keys: list[str]) -> dict[str, str]:
    base = f"models/{model.version}"
    uris = {
        "model_text": storage.write_bytes(f"{base}/model.txt", model.to_text().encode()),
        "model_json": storage.write_bytes(f"{base}/model.json", model.to_json().encode()),
        "model_card": storage.write_bytes(f"{base}/model_card.json",
                                          json.dumps({**model.card(), "training_files": training_keys},
                                                     indent=2).encode()),
    }
    storage.write_bytes(pointer, json.dumps({"version": model.version, "path": base}).encode())
    return uris


def load_current_model(storage: Storage, pointer: str):
    if not storage.exists(pointer):
        raise FileNotFoundError(f"No model at {storage.uri(pointer)}; materialise propensity_model first.")
    current = json.loads(storage.read_bytes(pointer))
    return current["version"], load_booster(storage.read_bytes(f"{current['path']}/model.txt").decode())
