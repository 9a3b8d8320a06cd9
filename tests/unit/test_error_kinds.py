"""Errors carry a kind; the HTTP layer alone turns a kind into a status (app/api/error_handlers.py)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import get_args

import app.errors as errors
from app.api.error_handlers import STATUS_OF_KIND, status_of

APP = Path(__file__).resolve().parents[2] / "app"

# The statuses clients have always been answered with, by error class.
EXPECTED = {
    "AppError": 400, "InvalidParameter": 422, "NotAPdf": 415, "UploadTooLarge": 413, "TooManyPages": 413,
    "UnreadablePdf": 422, "EncryptedPdf": 422, "EmptyPdf": 422, "ImageTooLarge": 413, "UnreadableImage": 422,
    "PageTooLarge": 422, "Unauthorized": 401, "RequestTimeout": 408, "NotFound": 404, "Conflict": 409,
    "Overloaded": 503, "NotReady": 503, "SidecarUnavailable": 503, "SidecarFailed": 502, "WorkerCrashed": 500,
    "InsufficientStorage": 507, "Cancelled": 409,
}


def _error_classes() -> dict[str, type[errors.AppError]]:
    return {name: cls for name, cls in vars(errors).items()
            if isinstance(cls, type) and issubclass(cls, errors.AppError)}


def test_every_error_keeps_its_status_through_its_kind():
    classes = _error_classes()
    assert set(classes) == set(EXPECTED)
    assert {name: status_of(cls("x")) for name, cls in classes.items()} == EXPECTED


def test_every_kind_has_a_status_and_caller_kinds_are_the_4xx():
    kinds = set(get_args(errors.ErrorKind))
    assert set(STATUS_OF_KIND) == kinds
    assert {k for k in kinds if 400 <= STATUS_OF_KIND[k] < 500} == errors.CALLER_KINDS


def test_no_http_status_outside_the_api_layer():
    # An error class saying `status = 4xx` would be a second table; the kind is what it says.
    for path in APP.rglob("*.py"):
        if path.is_relative_to(APP / "api"):
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                assigned = {t.id for stmt in node.body if isinstance(stmt, ast.Assign) for t in stmt.targets
                            if isinstance(t, ast.Name)}
                assigned |= {e.id for stmt in node.body if isinstance(stmt, ast.Assign) for t in stmt.targets
                             if isinstance(t, ast.Tuple) for e in t.elts if isinstance(e, ast.Name)}
                assert not {"status", "http_status"} & assigned or not _is_error(node), f"{path}: {node.name}"


def _is_error(node: ast.ClassDef) -> bool:
    return any(isinstance(b, ast.Name) and (b.id.endswith("Error") or b.id in _error_classes()) for b in node.bases)
