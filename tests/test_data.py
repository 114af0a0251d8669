"The data root against the real local data folder (CI: shared/data)."
import pytest

from maskviz.data import HUB_DATASETS, data_root, data_source


def test_every_dataset_is_in_the_shared_folder(shared_data):
    assert data_root() == shared_data.resolve()
    for name in HUB_DATASETS: assert data_source(name).is_dir()
    assert len(list(data_source("blimp").glob("*.jsonl"))) == 67


def test_without_a_root_datasets_come_from_the_hub(monkeypatch):
    monkeypatch.delenv("MASKVIZ_DATA", raising=False)
    assert data_source("glue") == "nyu-mll/glue"


def test_a_missing_root_is_an_error_not_the_hub(monkeypatch, tmp_path):
    monkeypatch.setenv("MASKVIZ_DATA", str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="MASKVIZ_DATA"):
        data_source("blimp")
