"""Local storage: keys, listing, Parquet, and the landing zone the sandbox exports into."""

import polars as pl
import pytest

from aep_assets.storage import LocalStorage


def test_write_list_read(tmp_path):
    store = LocalStorage(tmp_path)
    store.write_parquet("a/b.parquet", pl.DataFrame({"x": [1]}))
    store.write_bytes("a/c.json", b"{}")
    assert store.list_keys("a") == ["a/b.parquet", "a/c.json"]
    assert store.read_parquet(["a/b.parquet"])["x"].to_list() == [1]
    assert store.exists("a/c.json") and not store.exists("a/d.json")


def test_keys_cannot_escape_the_base_directory(tmp_path):
    with pytest.raises(ValueError, match="escapes"):
        LocalStorage(tmp_path / "s").write_bytes("../outside.txt", b"x")


def test_exports_target_the_sandbox_landing_zone_inside_storage(tmp_path):
    store = LocalStorage(tmp_path)
    target, prefix = store.export_target("aep_assets/training")
    assert target.kind == "dlz" and target.path == "aep_assets/training"
    assert (tmp_path / prefix).resolve() == store.landing_zone_dir / "dlz-destination" / "aep_assets" / "training"


def test_reading_nothing_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        LocalStorage(tmp_path).read_parquet([])
