"""The data-quality gate reading its dataset from, and writing its report to, a real S3 API (SeaweedFS)."""

import io
import json

import pytest
from quality_dataset import build_good_rows

from hipo import storage
from hipo.config import QualityConfig
from hipo.quality import DatasetError, check, validate_dataset, write_report


def test_gate_reads_s3_and_writes_report_there(s3_prefix):
    for split, frame in build_good_rows(100, 25).items():
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        storage.write_bytes(f"{s3_prefix}/data/{split}.parquet", buffer.getvalue())
    result = check(validate_dataset(f"{s3_prefix}/data/", QualityConfig()))
    assert result.row_counts == {"train": 100, "eval": 25}
    written = write_report(result, f"{s3_prefix}/report")
    assert json.loads(storage.read_bytes(written["result.json"]))["passed"] is True
    assert b"columns_present" in storage.read_bytes(written["report.html"])


def test_missing_s3_dataset_is_named(s3_prefix):
    with pytest.raises(DatasetError, match=r"has no train split: expected train\.parquet or train\.jsonl"):
        validate_dataset(f"{s3_prefix}/nothing", QualityConfig())


def test_the_data_pipelines_output_folder_is_pointed_to_its_cold_start_sets(s3_prefix):
    for name in ("mix", "on"):
        storage.write_bytes(f"{s3_prefix}/out/{name}/train.jsonl", b"")
    with pytest.raises(DatasetError) as caught:
        validate_dataset(f"{s3_prefix}/out", QualityConfig())
    assert str(caught.value).endswith(
        f"it holds the Cold-Start sets mix and on: pass {s3_prefix}/out/mix or {s3_prefix}/out/on"
    )
