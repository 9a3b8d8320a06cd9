"""app/compat: PaddleX's request fields sorted into honoured and ignored, file types, dataInfo, our pages as
prunedResult (pixels, labels, order), Markdown, paragraph edges and restructuring across pages."""

from __future__ import annotations

import json

import pytest

from app.compat import paddlex
from app.compat import paddlex_pages as pages
from app.errors import InvalidParameter
from app.pipeline.result import Block, PageResult
from tests.paddlex_schemas import validate_request


def request(**fields) -> paddlex.LayoutParsingRequest:
    validate_request({"file": "eA==", **fields})  # every case is a request PaddleX itself accepts
    return paddlex.LayoutParsingRequest.model_validate({"file": "eA==", **fields})


def test_sent_fields_without_a_knob_are_listed_and_defaults_are_not():
    assert paddlex.ignored_fields(request(), vl=False) == []
    assert paddlex.ignored_fields(request(prettifyMarkdown=False, visualize=True, mergeTables=False), vl=False) == []
    sent = request(useDocUnwarping=False, layoutNms=True, temperature=0.1, topP=0.5, maxPixels=10, mergeLayoutBlocks=True,
                   useLayoutDetection=False, layoutShapeMode="poly", showFormulaNumber=True, outputFormats=["docx"])
    assert paddlex.ignored_fields(sent, vl=False) == [
        "useDocUnwarping", "useLayoutDetection", "layoutNms", "layoutShapeMode", "temperature", "topP", "maxPixels",
        "mergeLayoutBlocks", "showFormulaNumber", "outputFormats"]
    # with the sidecar the sampling fields are applied (sampling_overrides), the pixel bounds are not
    assert paddlex.ignored_fields(sent, vl=True) == [
        "useDocUnwarping", "useLayoutDetection", "layoutNms", "layoutShapeMode", "maxPixels", "mergeLayoutBlocks",
        "showFormulaNumber", "outputFormats"]
    assert paddlex.sampling_overrides(sent) == {"temperature": 0.1, "top_p": 0.5}


@pytest.mark.parametrize("fields", [{"topP": 0}, {"temperature": -1}, {"promptLabel": "poem"},
                                    {"layoutThreshold": {"text": 1.5}}, {"minPixels": 9, "maxPixels": 3},
                                    {"layoutMergeBboxesMode": "biggest"}, {"fileType": 2}])
def test_requests_paddlex_refuses_are_refused(fields):
    with pytest.raises(InvalidParameter) as caught:
        paddlex.parse_request(json.dumps({"file": "eA==", **fields}).encode(), paddlex.LayoutParsingRequest)
    problems = json.loads(caught.value.message)
    assert problems and {"type", "loc", "msg"} <= set(problems[0])


def test_file_types_come_from_the_bytes_and_a_contradicting_declaration_is_refused():
    assert paddlex.check_file_type(None, None, b"%PDF-1.4") == paddlex.PDF
    assert paddlex.check_file_type(1, "PNG", b"\x89PNG") == paddlex.IMAGE
    with pytest.raises(InvalidParameter, match="fileType says a PDF, but the file is a JPEG image"):
        paddlex.check_file_type(0, "JPEG", b"\xff\xd8\xff")
    with pytest.raises(InvalidParameter, match="neither a PDF nor an accepted image"):
        paddlex.check_file_type(None, None, b"GIF89a")
    assert paddlex.decode_file("JVBER i0x\nLjc") == b"%PDF-1.7"  # whitespace and missing padding tolerated


def test_data_info_per_kind():
    assert paddlex.data_info(paddlex.IMAGE, "PNG", [(30, 40)]) == {"width": 30, "height": 40, "type": "image"}
    assert paddlex.data_info(paddlex.IMAGE, "TIFF", [(30, 40), (50, 60)])["type"] == "tiff"
    one_page_pdf = paddlex.data_info(paddlex.PDF, None, [(30, 40)])
    assert one_page_pdf == {"numPages": 1, "pages": [{"width": 30, "height": 40}], "type": "pdf"}


def page(*blocks: Block, width: float = 612, height: float = 792) -> PageResult:
    return PageResult(page=1, width=width, height=height, source="text", markdown="", blocks=list(blocks))


SETTINGS = {"markdown_ignore_labels": list(paddlex.DEFAULT_MARKDOWN_IGNORE_LABELS)}


def test_pruned_page_scales_boxes_maps_labels_and_numbers_the_reading_order():
    result = pages.pruned_page(page(
        Block(type="header", bbox=(72, 20, 300, 30), text="Running head", order=0),
        Block(type="title", bbox=(72, 72, 300, 90), text="Report", level=1, order=1),
        Block(type="text", bbox=(72, 100, 540, 200), text="Body.", order=2, score=0.9),
        Block(type="figure", bbox=(72, 210, 540, 400), image="images/p1-fig1.png", order=3),
        Block(type="caption", bbox=(72, 402, 540, 420), text="Figure 1", order=4),
        Block(type="page_number", bbox=(300, 760, 312, 772), text="1", order=5),
    ), pages.pdf_page_pixels(612, 792), SETTINGS)
    assert (result["width"], result["height"]) == (1224, 1584)
    blocks = result["parsing_res_list"]
    assert [b["block_label"] for b in blocks] == ["header", "doc_title", "text", "image", "figure_title", "number"]
    assert [b["block_order"] for b in blocks] == [None, 1, 2, None, None, None]
    assert blocks[2]["block_bbox"] == [144, 200, 1080, 400]
    assert [b["cls_id"] for b in result["layout_det_res"]["boxes"]] == [12, 6, 22, 14, 7, 16]
    markdown = pages.page_markdown(result, pretty=False)
    assert markdown == "# Report\n\nBody.\n\n![](images/p1-fig1.png)\n\nFigure 1"  # header and number left out
    shown = pages.page_markdown({**result, "model_settings": {"markdown_ignore_labels": []}}, pretty=True)
    assert shown.startswith("Running head\n\n# Report") and '<img src="images/p1-fig1.png"' in shown


def test_paragraph_edges_follow_text_running_across_the_page_break():
    def edges(*texts: str):
        blocks = [{"block_label": "text", "block_content": t} for t in texts]
        return pages.paragraph_edges({"parsing_res_list": blocks, "model_settings": SETTINGS})

    assert edges("Whole sentence.", "Another one.") == (True, True)
    assert edges("continued from before.", "and runs on to the") == (False, False)


def table(rows: list[list[str]], **extra) -> dict:
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return {"block_label": "table", "block_content": f"<table>{body}</table>", **extra}


def test_restructure_merges_a_continued_table_and_concatenates_pages():
    first = {"parsing_res_list": [{"block_label": "text", "block_content": "Intro."},
                                  table([["Region", "Sales"], ["North", "1"]]),
                                  {"block_label": "number", "block_content": "1"}]}
    second = {"parsing_res_list": [table([["Region", "Sales"], ["South", "2"]], continues_previous_page=True),
                                   {"block_label": "text", "block_content": "After."}]}
    merged = pages.restructure([first, second], merge_tables=True, concatenate=False)
    assert merged[0]["parsing_res_list"][1]["block_content"] == (
        "<table><tr><td>Region</td><td>Sales</td></tr><tr><td>North</td><td>1</td></tr>"
        "<tr><td>South</td><td>2</td></tr></table>")  # the repeated header row dropped
    assert merged[1]["parsing_res_list"][0]["block_content"] == ""
    assert first["parsing_res_list"][1]["block_content"].count("<tr>") == 2  # the input is left as it was
    kept = pages.restructure([first, second], merge_tables=False, concatenate=True)
    assert len(kept) == 1 and len(kept[0]["parsing_res_list"]) == 5
    unrelated = {"parsing_res_list": [table([["a", "b", "c"]])]}
    assert pages.restructure([first, unrelated], merge_tables=True, concatenate=False)[1] == unrelated


def test_relevel_titles_by_their_numbering():
    pruned = {"parsing_res_list": [{"block_label": "paragraph_title", "block_content": c}
                                   for c in ("1 Introduction", "1.2 Scope", "2.3.1 Detail", "Appendix")]}
    assert pages.page_markdown(pruned, pretty=False, relevel=True).split("\n\n") == [
        "## 1 Introduction", "### 1.2 Scope", "#### 2.3.1 Detail", "## Appendix"]
    assert pages.page_markdown(pruned, pretty=False).split("\n\n")[1] == "## 1.2 Scope"
