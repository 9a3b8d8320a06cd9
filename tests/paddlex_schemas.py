"""PaddleX's own pydantic models of its serving API, to validate our answers against.

Only the schema modules are imported: `import paddlex` would run the package's __init__ (pipelines, models,
repo managers; modules we do not install: requirements-paddlex-schemas.txt installs paddlex with --no-deps), so
the three package levels above the schemas are registered as bare namespace packages first. The schema modules
themselves import pydantic and paddlex.utils.{deps,logging,flags} only.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

import pytest


@functools.cache
def _load() -> tuple[Any, Any]:
    spec = importlib.util.find_spec("paddlex")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("paddlex is not installed (make install-dev installs requirements-paddlex-schemas.txt)")
    root = Path(next(iter(spec.submodule_search_locations)))
    for name, sub in (("paddlex", ""), ("paddlex.inference", "inference"),
                      ("paddlex.inference.serving", "inference/serving")):
        if name not in sys.modules:
            package = types.ModuleType(name)
            package.__path__ = [str(root / sub)]
            sys.modules[name] = package
    schema = importlib.import_module("paddlex.inference.serving.schemas.paddleocr_vl")
    models = importlib.import_module("paddlex.inference.serving.infra.models")
    return schema, models


def validate_success(body: dict[str, Any], result_model: str = "InferResult") -> Any:
    """`body` as PaddleX's success envelope around `result_model` (InferResult, RestructurePagesResult)."""
    schema, models = _load()
    result_type = getattr(schema, result_model)
    return models.AIStudioResultResponse[result_type].model_validate(body)


def validate_failure(body: dict[str, Any]) -> Any:
    _schema, models = _load()
    return models.AIStudioNoResultResponse.model_validate(body)


def validate_request(payload: dict[str, Any], request_model: str = "InferRequest") -> Any:
    """A request body we send, checked against PaddleX's request model (so the tests speak its contract)."""
    schema, _models = _load()
    return getattr(schema, request_model).model_validate(payload)
