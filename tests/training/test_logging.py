import csv

from cortexsnn.training.logging import RunLogger


def test_csv_and_tensorboard(tmp_path):
    with RunLogger(tmp_path) as logger:
        logger.log(1, "train", loss=0.5)
        logger.log(1, "val", loss=0.4, accuracy=0.9)
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert [r["split"] for r in rows] == ["train", "val"]
    assert rows[1]["accuracy"] == "0.9" and rows[0]["accuracy"] == ""
    assert any((tmp_path / "tensorboard").iterdir())
    # a resumed run appends to the same file
    with RunLogger(tmp_path, tensorboard=False) as logger:
        logger.log(2, "train", loss=0.3)
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert [r["step"] for r in rows] == ["1", "1", "2"]
