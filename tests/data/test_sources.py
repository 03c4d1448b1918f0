"""A dataset_mixer's relative data paths are found next to the package from any working folder."""

from zephyr.data.sources import PACKAGE_PARENT, resolve_sources


def test_data_paths_resolve_next_to_the_package(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # somewhere the relative path does not exist
    resolved = resolve_sources({"zephyr/demo_data": 1.0, "zephyr/demo_data@sft_test": 0.5, "some/hub-id": 1.0})
    assert resolved == {str(PACKAGE_PARENT / "zephyr/demo_data"): 1.0,
                        str(PACKAGE_PARENT / "zephyr/demo_data") + "@sft_test": 0.5, "some/hub-id": 1.0}
    assert (PACKAGE_PARENT / "zephyr/demo_data/sft_train.jsonl").exists()
