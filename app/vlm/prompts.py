"""What PaddleOCR-VL is asked for each region, and the request body it is asked with.

Mirrors the official PaddleX client (`doc_vlm/predictor.py` `DocVLMGenAIClientPredictor` and the PaddleOCR-VL
pipeline): one user message, the region crop as a JPEG data URL first, then the task prompt; temperature 0;
`max_completion_tokens`; vLLM extras `skip_special_tokens`, `repetition_penalty` and `mm_processor_kwargs`.
"""

from __future__ import annotations

import base64
from typing import Any, Literal

Task = Literal["ocr", "table", "formula", "chart"]

PROMPTS: dict[Task, str] = {
    "ocr": "OCR:",
    "table": "Table Recognition:",
    "formula": "Formula Recognition:",
    "chart": "Chart Recognition:",
}
TASK_BY_PROMPT: dict[str, Task] = {prompt: task for task, prompt in PROMPTS.items()}

# The official pipeline's defaults for the vision encoder's resize bounds (pixels of the crop after resizing).
MIN_PIXELS = 112_896
MAX_PIXELS = 1_003_520
# vLLM's neutral value; the official pipeline sends the caller's value and the caller usually leaves it unset.
REPETITION_PENALTY = 1.0


def task_for(label: str, *, chart_recognition: bool = False) -> Task | None:
    """The VLM task for a region label, or None when the region is not sent (figures; charts unless enabled)."""
    if label == "figure":
        return None
    if label == "chart":
        return "chart" if chart_recognition else None
    if label == "table":
        return "table"
    if label == "formula":
        return "formula"
    return "ocr"  # every text-like region: text, title, list, caption, header, footer, page_number, reference


def jpeg_data_url(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def chat_request(*, model: str, jpeg: bytes, task: Task, max_completion_tokens: int) -> dict[str, Any]:
    """The JSON body of one `POST /v1/chat/completions` for one region crop."""
    return {
        "model": model,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": jpeg_data_url(jpeg)}},
                    {"type": "text", "text": PROMPTS[task]},
                ],
            }
        ],
        "temperature": 0.0,
        "max_completion_tokens": max_completion_tokens,
        # vLLM-specific sampling/processor extras (what the OpenAI client sends as `extra_body`).
        "skip_special_tokens": True,
        "repetition_penalty": REPETITION_PENALTY,
        "mm_processor_kwargs": {"min_pixels": MIN_PIXELS, "max_pixels": MAX_PIXELS},
    }
