"""`python -m app batch` against a real moto S3 server process: sharding, key scheme, idempotent re-runs."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import httpx
import pytest

from app.batch import (
    ERROR_SUFFIX,
    S3Location,
    parse_s3_url,
    parse_shard,
    plan,
    result_stem,
    result_stems,
    run_batch,
    shard_of,
)
from app.errors import InvalidParameter
from app.pipeline.options import ConvertOptions
from app.pipeline.result import DocumentResult
from tests import pdfgen

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "docs"
CREDS = {"s3_access_key": "testing", "s3_secret_key": "testing", "s3_region": "us-east-1"}


# --- pure parts --------------------------------------------------------------------------------------------------
def test_s3_url_prefix_always_names_a_folder() -> None:
    assert parse_s3_url("s3://b/in") == S3Location("b", "in/")
    assert parse_s3_url("s3://b/in/sub/") == S3Location("b", "in/sub/")
    assert parse_s3_url("s3://b") == S3Location("b", "")
    with pytest.raises(InvalidParameter):
        parse_s3_url("https://b/in")
    with pytest.raises(InvalidParameter):
        parse_s3_url("s3:///in")


def test_shard_comes_from_the_indexed_job_environment() -> None:
    assert parse_shard("1/4", {}) == (1, 4)
    assert parse_shard(None, {"JOB_COMPLETION_INDEX": "2", "BATCH_SHARDS": "3"}) == (2, 3)
    assert parse_shard(None, {}) == (0, 1)
    for bad in ("4/4", "-1/2", "x", "1/0"):
        with pytest.raises(InvalidParameter):
            parse_shard(bad, {})
    with pytest.raises(InvalidParameter, match="together"):
        parse_shard(None, {"JOB_COMPLETION_INDEX": "0"})


def test_shards_partition_the_inputs_and_skip_finished_ones() -> None:
    keys = [f"d{i}/f{i}.PDF" if i % 7 == 0 else f"f{i}.pdf" for i in range(200)] + ["notes.txt", "dir/"]
    plans = [plan(keys, ["f1.json", "f2.error.json", "f3.md"], shard, 3) for shard in range(3)]
    todo = [key for p in plans for key in p.todo]
    done = [key for p in plans for key in p.done]
    assert sorted(todo + done) == sorted(k for k in keys if k.lower().endswith(".pdf"))
    assert len(set(todo)) == len(todo)
    assert sorted(done) == ["f1.pdf", "f2.pdf"]  # f3 has only its .md: unfinished, converted again
    assert all(0 < len(p.todo) < 150 for p in plans)  # the hash spreads keys
    assert shard_of("a/b.pdf", 3) == shard_of("a/b.pdf", 3)
    assert result_stem("d7/f7.PDF") == "d7/f7"


def test_inputs_sharing_a_stem_keep_their_whole_key_and_others_keep_their_stem() -> None:
    keys = ["a.pdf", "a.png", "b.pdf", "a.pdf.png", "c/a.pdf", "d.PDF", "d.pdf"]
    assert result_stems(keys) == {"a.pdf": "a.pdf", "a.png": "a.png", "b.pdf": "b", "a.pdf.png": "a.pdf.png",
                                  "c/a.pdf": "c/a", "d.PDF": "d.PDF", "d.pdf": "d.pdf"}
    # e.error.pdf's result would be e.pdf's error marker (e.error.json): neither may pass for the other
    assert result_stems(["e.pdf", "e.error.pdf", "f.pdf"]) == {"e.pdf": "e.pdf", "e.error.pdf": "e.error.pdf",
                                                               "f.pdf": "f"}
    # every shard sees the whole listing: a.pdf and a.png are told apart even when they land in different shards
    plans = [plan(keys + ["notes.txt"], ["a.pdf.json", "b.json"], shard, 4) for shard in range(4)]
    assert all(p.stems == result_stems(keys) for p in plans)
    assert sorted(k for p in plans for k in p.done) == ["a.pdf", "b.pdf"]
    assert "a.png" in [k for p in plans for k in p.todo]


# --- against a moto server ---------------------------------------------------------------------------------------
@pytest.fixture
def moto_endpoint(moto_s3: str) -> str:
    """The suite's moto server (tests/integration/conftest.py); each test resets it below."""
    return moto_s3


@pytest.fixture
def s3(moto_endpoint: str):
    client = boto3.client(
        "s3", endpoint_url=moto_endpoint, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )
    httpx.post(moto_endpoint + "/moto-api/reset")
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def inputs(s3, tmp_path: Path) -> dict[str, int]:
    """Five one- or two-page text PDFs (one nested), a corrupt PDF and a non-PDF under `in/`."""
    pages = {"a.pdf": 1, "b.pdf": 2, "c.pdf": 1, "reports/q3.pdf": 1, "reports/2024/q4.PDF": 1}
    for relative, count in pages.items():
        path = pdfgen.text_pdf(tmp_path / f"src-{len(relative)}-{count}.pdf", pages=count)
        s3.upload_file(str(path), BUCKET, "in/" + relative)
    s3.upload_file(str(pdfgen.random_bytes(tmp_path / "bad.pdf", pdf_header=True)), BUCKET, "in/broken.pdf")
    s3.put_object(Bucket=BUCKET, Key="in/readme.txt", Body=b"not an input")
    return pages


def _keys(s3, prefix: str) -> set[str]:
    listing = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return {item["Key"][len(prefix):] for item in listing}


def _run(settings, shard: int, shards: int):
    return asyncio.run(
        run_batch(
            settings, parse_s3_url(f"s3://{BUCKET}/in"), parse_s3_url(f"s3://{BUCKET}/out/"),
            shard=shard, shards=shards, options=ConvertOptions(mode="text", dpi=72),
        )
    )


@pytest.mark.timeout(300)
def test_two_shards_convert_every_input_once_and_a_rerun_skips_them(
    s3, inputs: dict[str, int], moto_endpoint: str, make_settings, tmp_path: Path
) -> None:
    settings = make_settings(s3_endpoint=moto_endpoint, workers=1, **CREDS)
    first, second = _run(settings, 0, 2), _run(settings, 1, 2)

    converted = first.converted + second.converted
    assert sorted(converted) == sorted(inputs)  # every valid PDF exactly once across the two shards
    assert first.ok and second.ok
    assert {**first.rejected, **second.rejected} == {"broken.pdf": "unreadable_pdf"}
    expected = {result_stem(k) + ext for k in inputs for ext in (".md", ".json")} | {"broken" + ERROR_SUFFIX}
    assert _keys(s3, "out/") == expected

    body = s3.get_object(Bucket=BUCKET, Key="out/reports/2024/q4.json")["Body"].read()
    document = DocumentResult.model_validate_json(body)
    assert document.page_count == 1 and document.pages[0].source == "text"
    markdown = s3.get_object(Bucket=BUCKET, Key="out/b.md")["Body"].read().decode()
    assert pdfgen.TITLE in markdown and "This is page 2 of the report." in markdown
    marker = json.loads(s3.get_object(Bucket=BUCKET, Key="out/broken" + ERROR_SUFFIX)["Body"].read())
    assert marker["error"]["type"] == "unreadable_pdf"

    # A re-run (here through the CLI, shard from the Indexed Job variables) converts nothing.
    env = {**os.environ, "S3_ENDPOINT": moto_endpoint, "S3_ACCESS_KEY": "testing", "S3_SECRET_KEY": "testing",
           "OUTPUT_DIR": str(tmp_path / "out"), "WORKERS": "1", "LOG_JSON": "false"}
    for index in (0, 1):
        done = subprocess.run(
            [sys.executable, "-m", "app", "batch", f"s3://{BUCKET}/in/", "--out", f"s3://{BUCKET}/out",
             "--mode", "text"],
            env={**env, "JOB_COMPLETION_INDEX": str(index), "BATCH_SHARDS": "2"},
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["converted"] == 0 and report["shard"] == f"{index}/2"
    assert _keys(s3, "out/") == expected

    # A result lost (or never finished: only its .md) is redone by its shard alone.
    s3.delete_object(Bucket=BUCKET, Key="out/reports/q3.json")
    lost_shard = shard_of("reports/q3.pdf", 2)
    redo = _run(settings, lost_shard, 2)
    assert redo.converted == ["reports/q3.pdf"]
    assert _run(settings, 1 - lost_shard, 2).converted == []
    assert _keys(s3, "out/") == expected


@pytest.mark.timeout(300)
def test_batch_reads_images_and_uploads_crops_beside_each_result(s3, moto_endpoint: str, make_settings,
                                                                  tmp_path: Path) -> None:
    figures = pdfgen.figure_pdf(tmp_path / "figures.pdf", pages=2)
    s3.upload_file(str(figures), BUCKET, "in/docs/figures.pdf")
    scan = tmp_path / "scan.png"
    pdfgen.scan_image(dpi=200).save(scan, dpi=(200, 200))
    s3.upload_file(str(scan), BUCKET, "in/scans/page.PNG")
    pdfgen.png_bomb(tmp_path / "bomb.png")
    s3.upload_file(str(tmp_path / "bomb.png"), BUCKET, "in/bomb.png")
    settings = make_settings(s3_endpoint=moto_endpoint, workers=1, **CREDS)
    report = asyncio.run(run_batch(settings, parse_s3_url(f"s3://{BUCKET}/in"), parse_s3_url(f"s3://{BUCKET}/out/"),
                                   options=ConvertOptions(mode="auto")))
    assert sorted(report.converted) == ["docs/figures.pdf", "scans/page.PNG"], report
    assert report.rejected == {"bomb.png": "image_too_large"}
    assert _keys(s3, "out/") == {"docs/figures.md", "docs/figures.json", "docs/figures_images/p1-fig1.png",
                                 "docs/figures_images/p2-fig1.jpg", "scans/page.md", "scans/page.json",
                                 "bomb" + ERROR_SUFFIX}
    markdown = s3.get_object(Bucket=BUCKET, Key="out/docs/figures.md")["Body"].read().decode()
    assert f"![{pdfgen.FIGURE_CAPTIONS[0]}](figures_images/p1-fig1.png)" in markdown
    crop = s3.get_object(Bucket=BUCKET, Key="out/docs/figures_images/p2-fig1.jpg")
    assert crop["ContentType"] == "image/jpeg" and crop["Body"].read()[:3] == b"\xff\xd8\xff"
    scan_doc = DocumentResult.model_validate_json(s3.get_object(Bucket=BUCKET, Key="out/scans/page.json")["Body"]
                                                  .read())
    assert scan_doc.pages[0].source == "ocr" and "recognition" in scan_doc.markdown


@pytest.mark.timeout(300)
def test_inputs_with_one_stem_get_one_result_each(s3, moto_endpoint: str, make_settings, tmp_path: Path) -> None:
    """`a.pdf` and `a.png` under one prefix: neither result overwrites the other; a lone input keeps `<stem>.json`."""
    s3.upload_file(str(pdfgen.text_pdf(tmp_path / "a.pdf", pages=1)), BUCKET, "in/same/a.pdf")
    scan = tmp_path / "a.png"
    pdfgen.scan_image(dpi=200).save(scan, dpi=(200, 200))
    s3.upload_file(str(scan), BUCKET, "in/same/a.png")
    s3.upload_file(str(pdfgen.text_pdf(tmp_path / "solo.pdf", pages=2)), BUCKET, "in/solo.pdf")
    settings = make_settings(s3_endpoint=moto_endpoint, workers=1, **CREDS)

    def run():
        return asyncio.run(run_batch(settings, parse_s3_url(f"s3://{BUCKET}/in"),
                                     parse_s3_url(f"s3://{BUCKET}/out/"), options=ConvertOptions(mode="auto")))

    report = run()
    assert sorted(report.converted) == ["same/a.pdf", "same/a.png", "solo.pdf"], report
    expected = {"same/a.pdf.md", "same/a.pdf.json", "same/a.png.md", "same/a.png.json", "solo.md", "solo.json"}
    assert _keys(s3, "out/") == expected

    def document(key: str) -> DocumentResult:
        return DocumentResult.model_validate_json(s3.get_object(Bucket=BUCKET, Key=f"out/{key}")["Body"].read())

    from_pdf, from_png = document("same/a.pdf.json"), document("same/a.png.json")
    assert from_pdf.pages[0].source == "text" and pdfgen.TITLE in from_pdf.markdown
    assert from_png.pages[0].source == "ocr" and "recognition" in from_png.markdown
    assert document("solo.json").page_count == 2
    assert run().converted == [] and _keys(s3, "out/") == expected  # a re-run finds both results


@pytest.mark.timeout(300)
def test_batch_with_chunking_uploads_chunks_beside_each_result(s3, moto_endpoint: str, make_settings,
                                                               tmp_path: Path) -> None:
    from app.chunking.chunker import ChunkOptions, ChunkSet

    s3.upload_file(str(pdfgen.text_pdf(tmp_path / "doc.pdf", pages=2)), BUCKET, "in/doc.pdf")
    settings = make_settings(s3_endpoint=moto_endpoint, workers=1, **CREDS)
    report = asyncio.run(run_batch(settings, parse_s3_url(f"s3://{BUCKET}/in"), parse_s3_url(f"s3://{BUCKET}/out/"),
                                   options=ConvertOptions(mode="text"), chunk_options=ChunkOptions("hybrid", 48)))
    assert report.converted == ["doc.pdf"]
    assert _keys(s3, "out/") == {"doc.md", "doc.json", "doc.chunks.json"}
    chunks = ChunkSet.model_validate_json(s3.get_object(Bucket=BUCKET, Key="out/doc.chunks.json")["Body"].read())
    assert chunks.chunking == "hybrid" and chunks.chunks and all(c.tokens <= 48 for c in chunks.chunks)
    assert {page for c in chunks.chunks for page in c.pages} == {1, 2}
