"""The one conversion sequence (app/conversion/service.py) on a real pool: the admission policies (a call someone
waits on is refused at the bound, a caller's own files wait), who removes the input, and what the outputs see."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from app.conversion.service import Admit, ResultOnly, convert
from app.conversion.source import SourceFile, local_file
from app.errors import NotAPdf, Overloaded
from app.observability.metrics import Metrics
from app.pipeline.options import ConvertOptions
from app.pipeline.result import DocumentResult
from app.runtime.pool import PagePool
from app.services import Services
from app.settings import Settings
from tests import pdfgen


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    settings = Settings(_env_file=None, output_dir=tmp_path_factory.mktemp("out"), max_pending_pages=4)
    pool = PagePool(settings, workers=1, preload_engines=False)
    pool.start()
    yield Services(settings=settings, metrics=Metrics(), pool=pool)
    pool.close(grace_s=0)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    return pdfgen.text_pdf(tmp_path_factory.mktemp("pdf") / "report.pdf", pages=3)


class Recording:
    """Outputs that keep what they were given, with a directory for crops, and can fail to write."""

    def __init__(self, root: Path, fail: bool = False) -> None:
        self.root, self.fail = root, fail
        self.created: Path | None = None
        self.written: DocumentResult | None = None
        self.discarded = 0

    def images_dir(self) -> Path:
        self.created = self.root / "crops"
        self.created.mkdir()
        return self.created

    async def write(self, result: DocumentResult) -> str:
        if self.fail:
            raise OSError(28, "No space left on device")
        self.written = result
        return "written"

    def discard(self) -> None:
        self.discarded += 1
        if self.created is not None:
            shutil.rmtree(self.created, ignore_errors=True)


def _copy(report: Path, tmp_path: Path, name: str = "upload.pdf") -> SourceFile:
    path = tmp_path / name
    shutil.copyfile(report, path)
    return SourceFile(path=path, size=path.stat().st_size, filename=name)


def _rejections(services: Services) -> float:
    return services.metrics.rejections.labels("overloaded")._value.get()


def test_a_call_someone_waits_on_is_refused_at_the_bound_and_a_callers_own_file_waits(services, report, tmp_path):
    options = ConvertOptions(mode="text")

    async def scenario() -> None:
        held = services.pool.admit(4)  # the pool at its pending-page bound
        try:
            refused = _copy(report, tmp_path, "refused.pdf")
            before = _rejections(services)
            with pytest.raises(Overloaded) as raised:
                await convert(services, refused, options, ResultOnly(), admit_how=Admit.NOW)
            assert raised.value.retry_after_s and raised.value.retry_after_s >= 1
            assert _rejections(services) == before + 1
            assert not refused.path.exists()  # a stored upload is removed however the call ends

            waiting = asyncio.create_task(convert(services, _copy(report, tmp_path, "waits.pdf"), options,
                                                  ResultOnly(), admit_how=Admit.WAIT))
            await asyncio.sleep(0.6)
            assert not waiting.done()  # queued behind the held pages, not refused
        finally:
            held.release()
        result = await asyncio.wait_for(waiting, 30)
        assert [p.page for p in result.pages] == [1, 2, 3]

    asyncio.run(scenario())
    assert services.pool.stats().pending_pages == 0


def test_the_outputs_get_the_result_and_the_callers_own_file_stays(services, report, tmp_path):
    source = local_file(report, services.settings, mode="text")  # the CLI's and batch's kind of input
    outputs = Recording(tmp_path)
    seen: list[tuple[int, int]] = []
    answer = asyncio.run(convert(services, source, ConvertOptions(mode="text", pages="2-3"), outputs,
                                 admit_how=Admit.WAIT, on_page=lambda page, total: seen.append((page.page, total))))
    assert answer == "written"
    assert outputs.written is not None and [p.page for p in outputs.written.pages] == [2, 3]
    assert sorted(seen) == [(2, 2), (3, 2)]
    assert report.exists()  # never the conversion's to remove
    assert outputs.discarded >= 1 and not outputs.created.exists()


def test_a_failed_write_still_discards_the_outputs_and_the_input(services, report, tmp_path):
    source = _copy(report, tmp_path)
    outputs = Recording(tmp_path, fail=True)
    with pytest.raises(OSError):
        asyncio.run(convert(services, source, ConvertOptions(mode="text"), outputs, admit_how=Admit.NOW))
    assert not source.path.exists()
    assert outputs.discarded >= 1 and not outputs.created.exists()
    assert services.pool.stats().pending_pages == 0


def test_a_file_refused_at_intake_never_reaches_the_outputs(services, tmp_path):
    path = tmp_path / "notes.pdf"
    path.write_bytes(b"not a pdf at all")
    outputs = Recording(tmp_path)
    with pytest.raises(NotAPdf):
        asyncio.run(convert(services, SourceFile(path, 16, "notes.pdf"), ConvertOptions(mode="text"), outputs,
                            admit_how=Admit.NOW))
    assert outputs.created is None and not path.exists()
