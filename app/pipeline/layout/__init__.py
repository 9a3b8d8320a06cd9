"""Layout engines behind one interface (`base.LayoutEngine`), chosen by `settings.layout_engine`."""

from __future__ import annotations

from app.pipeline.layout.base import LayoutEngine
from app.settings import Settings

__all__ = ["LayoutEngine", "create_layout_engine", "layout_model_name"]


def layout_model_name(settings: Settings) -> str:
    """The layout model this configuration runs (what /health, /version and doctor report)."""
    if settings.layout_engine == "paddlex":
        from app.models_manifest import paired_layout

        return paired_layout(settings.vlm_model_name)
    from app.pipeline.layout.cdla import CdlaLayoutEngine

    return CdlaLayoutEngine.model_files()[0].name


def create_layout_engine(settings: Settings) -> LayoutEngine:
    """The engine `settings.layout_engine` names, not yet loaded (call `load()` in the worker)."""
    if settings.layout_engine == "paddlex":
        # gpu profile only: imported lazily so that the cpu profile never needs paddlex installed.
        from app.pipeline.layout.paddlex import create_paddlex_layout_engine

        return create_paddlex_layout_engine(settings)
    from app.pipeline.layout.cdla import CdlaLayoutEngine

    return CdlaLayoutEngine(threads=settings.threads_per_worker)
