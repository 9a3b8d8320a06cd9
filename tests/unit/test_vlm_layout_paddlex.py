"""The PaddleX PP-DocLayoutV2 adapter on recorded PaddleX-shaped outputs (paddlex itself is gpu-image only)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.pipeline.layout.paddlex import PADDLEX_LABELS, PaddlexLayoutEngine, create_paddlex_layout_engine, regions_from_paddlex
from app.pipeline.result import BlockType

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def test_regions_keep_the_models_reading_order_and_map_labels():
    regions = regions_from_paddlex(load("paddlex_layout_page.json"), width=1200, height=1600)
    assert [r.label for r in regions] == [
        "header", "title", "text", "text", "caption", "table", "formula", "text", "figure", "chart", "footer",
        "page_number",
    ]
    # two columns at the same height: the model put the left one first and that order is kept
    assert regions[2].bbox[0] < regions[3].bbox[0]
    assert regions[5].bbox == (100.0, 470.0, 1100.0, 900.0) and regions[5].score == pytest.approx(0.9873)


def test_result_objects_with_a_json_attribute_are_read_too():
    class Result:
        json = load("paddlex_layout_page.json")

    assert len(regions_from_paddlex(Result(), width=1200, height=1600)) == 12


def test_boxes_are_clipped_tiny_ones_dropped_unknown_labels_read_as_text():
    regions = regions_from_paddlex(load("paddlex_layout_edge_cases.json"), width=1000, height=1000)
    assert regions[0].label == "title" and regions[0].bbox[0] == 0.0
    assert regions[1].bbox == (50.0, 60.0, 1000.0, 1000.0)
    assert all(r.bbox[2] - r.bbox[0] >= 4 for r in regions)  # the 2.5 px sliver is gone
    assert [r.label for r in regions] == ["title", "text", "text", "caption"]
    assert len(regions_from_paddlex(load("paddlex_layout_edge_cases.json"), width=1000, height=1000, min_score=0.5)) == 3


def test_every_pp_doclayoutv2_class_maps_into_the_fixed_vocabulary():
    vocabulary = set(BlockType.__args__)  # type: ignore[attr-defined]
    assert len(PADDLEX_LABELS) == 25
    assert set(PADDLEX_LABELS.values()) <= vocabulary


def test_not_a_layout_result_is_rejected():
    with pytest.raises(ValueError, match="boxes"):
        regions_from_paddlex({"res": {"rec_texts": []}}, width=10, height=10)


def test_engine_fails_loudly_without_the_baked_model(make_settings, tmp_path):
    engine = create_paddlex_layout_engine(make_settings(paddlex_home=tmp_path, layout_engine="paddlex"))
    assert isinstance(engine, PaddlexLayoutEngine) and not engine.health()
    with pytest.raises(FileNotFoundError, match="PP-DocLayoutV2"):
        engine.load()
