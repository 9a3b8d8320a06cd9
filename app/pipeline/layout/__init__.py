"""Layout engines behind one interface (`base.LayoutEngine`), chosen by `settings.layout_engine`."""

from __future__ import annotations

from app.pipeline.layout.base import LayoutEngine
from app.settings import Settings

__all__ = ["LayoutEngine", "create_layout_engine"]


def create_layout_engine(settings: Settings) -> LayoutEngine:
    """The engine `settings.layout_engine` names, not yet loaded (call `load()` in the worker)."""
    if settings.layout_engine == "paddlex":
        # gpu profile only: imported lazily so that the cpu profile never needs paddlex installed.
        from app.pipeline.layout.paddlex import create_paddlex_layout_engine

        return create_paddlex_layout_engine(settings)
    from app.pipeline.layout.cdla import CdlaLayoutEngine

    return CdlaLayoutEngine(threads=settings.threads_per_worker)
