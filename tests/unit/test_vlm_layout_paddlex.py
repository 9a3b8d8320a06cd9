"""The PaddleX PP-DocLayoutV2 adapter on recorded PaddleX-shaped outputs (paddlex itself is gpu-image only)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
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
    assert regions[1].bbox == (50.0, 60.0, 1000.0, 850.0)
    assert all(r.bbox[2] - r.bbox[0] >= 6 for r in regions)  # the 2.5 px sliver is gone
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
    with pytest.raises(FileNotFoundError, match="PP-DocLayoutV3"):  # the default set's (PaddleOCR-VL-1.6)
        engine.load()


def test_the_layout_model_is_the_one_paired_with_the_served_vlm(make_settings, tmp_path):
    new = create_paddlex_layout_engine(make_settings(paddlex_home=tmp_path, layout_engine="paddlex"))
    old = create_paddlex_layout_engine(make_settings(paddlex_home=tmp_path, layout_engine="paddlex",
                                                     vlm_model_name="PaddleOCR-VL-0.9B"))
    assert (new.model_name, new.model_dir.name) == ("PP-DocLayoutV3", "PP-DocLayoutV3")
    assert (old.model_name, old.model_dir.name) == ("PP-DocLayoutV2", "PP-DocLayoutV2")
    assert new.predict_kwargs["threshold"] == 0.3 and old.predict_kwargs["threshold"] == OFFICIAL_THRESHOLDS


# The official PaddleOCR-VL pipeline's layout settings (paddlex 3.7.2, configs/pipelines/PaddleOCR-VL.yaml), written
# out by class id so a change on either side shows up here.
OFFICIAL_THRESHOLDS = {0: 0.5, 1: 0.5, 2: 0.5, 3: 0.5, 4: 0.5, 5: 0.4, 6: 0.4, 7: 0.5, 8: 0.5, 9: 0.5, 10: 0.5,
                       11: 0.5, 12: 0.5, 13: 0.5, 14: 0.5, 15: 0.4, 16: 0.5, 17: 0.4, 18: 0.5, 19: 0.5, 20: 0.45,
                       21: 0.5, 22: 0.4, 23: 0.4, 24: 0.5}
OFFICIAL_LARGE_MERGE = {3, 5, 6, 15, 17}  # chart, display_formula, doc_title, inline_formula, paragraph_title


OFFICIAL_MERGE_LAYOUT_BLOCKS = True  # `merge_layout_blocks: True`


def test_layout_post_processing_is_the_official_pipelines():
    from app.pipeline.layout.cdla import CdlaLayoutEngine
    from app.pipeline.layout.paddlex import MERGE_LAYOUT_BLOCKS, PREDICT_KWARGS

    # vl mode reads runs of text regions together (layout/merge.py) with this engine, and only with this engine
    assert MERGE_LAYOUT_BLOCKS is OFFICIAL_MERGE_LAYOUT_BLOCKS
    assert PaddlexLayoutEngine.merge_layout_blocks is MERGE_LAYOUT_BLOCKS
    assert CdlaLayoutEngine.merge_layout_blocks is False

    from app.pipeline.layout.paddlex import PREDICT_KWARGS_BY_MODEL

    # PaddleOCR-VL-1.6.yaml (PP-DocLayoutV3): one threshold 0.3; PaddleOCR-VL.yaml (PP-DocLayoutV2): per class.
    assert PREDICT_KWARGS_BY_MODEL["PP-DocLayoutV3"]["threshold"] == 0.3
    assert PREDICT_KWARGS_BY_MODEL["PP-DocLayoutV2"]["threshold"] == OFFICIAL_THRESHOLDS
    assert PREDICT_KWARGS is PREDICT_KWARGS_BY_MODEL["PP-DocLayoutV3"]
    for kwargs in PREDICT_KWARGS_BY_MODEL.values():
        assert kwargs["layout_nms"] is True
        assert tuple(kwargs["layout_unclip_ratio"]) == (1.0, 1.0)
        modes = kwargs["layout_merge_bboxes_mode"]
        assert {k for k, v in modes.items() if v == "large"} == OFFICIAL_LARGE_MERGE
        assert set(modes) == set(range(25)) and set(modes.values()) == {"large", "union"}
        # The pipeline's default shape mode; the predictor's own overlap filter off, as paddleocr_vl/pipeline.py
        # calls it (the pipeline filters once itself: overlap.drop_overlapping in regions_from_paddlex).
        assert kwargs["layout_shape_mode"] == "auto"
        assert kwargs["filter_overlap_boxes"] is False


class RecordingModel:
    """Stands in for PaddleX's predictor: records what `predict` was called with, answers a recorded result."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def predict(self, image, **kwargs):
        self.calls.append({"shape": image.shape, **kwargs})
        return [load("paddlex_layout_page.json")]


def test_detect_passes_the_official_settings_and_keeps_the_models_order_and_labels(make_settings, tmp_path):
    from app.pipeline.layout.paddlex import PREDICT_KWARGS

    engine = create_paddlex_layout_engine(make_settings(paddlex_home=tmp_path, layout_engine="paddlex"))
    engine._model = RecordingModel()
    regions = engine.detect(np.zeros((1600, 1200, 3), dtype=np.uint8))
    (call,) = engine._model.calls
    assert {k: call[k] for k in PREDICT_KWARGS} == PREDICT_KWARGS
    assert call["filter_overlap_boxes"] is False  # once, ours: not again inside the predictor
    assert [r.order for r in regions] == list(range(len(regions)))
    assert regions[0].kind == "header" and [r.kind for r in regions if r.label == "formula"] == ["display_formula"]


def test_load_hands_paddlex_the_worker_thread_count(make_settings, tmp_path, monkeypatch):
    import sys
    import types

    seen = {}

    def create_model(**kwargs):
        import os

        seen.update(kwargs, threads=os.environ.get("PADDLE_PDX_CPU_NUM_THREADS"))
        return RecordingModel()

    monkeypatch.setitem(sys.modules, "paddlex", types.SimpleNamespace(create_model=create_model))
    monkeypatch.delenv("PADDLE_PDX_CPU_NUM_THREADS", raising=False)
    (tmp_path / "official_models" / "PP-DocLayoutV3").mkdir(parents=True)
    settings = make_settings(paddlex_home=tmp_path, layout_engine="paddlex", threads_per_worker=2)
    create_paddlex_layout_engine(settings).load()
    assert seen["threads"] == "2"  # not PaddleX's default of 10 threads per worker
    # No Paddle here (nor a GPU): CPU. In the image, paddlepaddle-gpu with a GPU visible: gpu:0 (layout_device).
    assert seen["model_name"] == "PP-DocLayoutV3" and seen["device"] == "cpu"


def test_the_layout_runs_on_the_gpu_where_paddle_is_the_cuda_build_and_sees_one(monkeypatch):
    import sys
    import types

    from app.pipeline.layout.paddlex import layout_device

    def fake_paddle(compiled: bool, count: int):
        cuda = types.SimpleNamespace(device_count=lambda: count)
        return types.SimpleNamespace(device=types.SimpleNamespace(is_compiled_with_cuda=lambda: compiled, cuda=cuda))

    monkeypatch.setitem(sys.modules, "paddle", fake_paddle(True, 1))
    assert layout_device() == "gpu:0"
    monkeypatch.setitem(sys.modules, "paddle", fake_paddle(True, 0))  # the build's smoke test: no GPU
    assert layout_device() == "cpu"
    monkeypatch.setitem(sys.modules, "paddle", fake_paddle(False, 0))
    assert layout_device() == "cpu"


def test_polygon_points_ride_along_as_the_regions_outline():
    # PaddleX-shaped PP-DocLayoutV3 boxes: in shape mode `auto` a box carries `polygon_points` (pixels).
    result = {"res": {"boxes": [
        {"cls_id": 22, "label": "text", "score": 0.9, "coordinate": [10, 10, 110, 60],
         "polygon_points": [[10, 10], [110, 10], [110, 35], [60, 60], [10, 60]]},
        {"cls_id": 14, "label": "image", "score": 0.9, "coordinate": [120, 10, 200, 60]},
    ]}}
    text, image = regions_from_paddlex(result, width=300, height=100)
    assert text.polygon == ((10.0, 10.0), (110.0, 10.0), (110.0, 35.0), (60.0, 60.0), (10.0, 60.0))
    assert image.polygon is None
