"""What PaddleOCR-VL is asked for each region, and the request body it is asked with.

Mirrors the official PaddleX client (`doc_vlm/predictor.py` `DocVLMGenAIClientPredictor` and the PaddleOCR-VL
pipeline): one user message, the region crop as a JPEG data URL first, then the task prompt; temperature 0;
`max_completion_tokens`; vLLM extras `skip_special_tokens` and `repetition_penalty`. The official client also sends
`mm_processor_kwargs` (the vision encoder's pixel bounds) with every request; here the sidecar is started with the same
bounds (`--mm-processor-kwargs` in supervisord.conf) and requests carry none: newer vLLM (0.32, the CPU test tier's)
answers per-request processor kwargs with 400 unless started with `--trust-request-mm-kwargs`, a flag the image's
0.11.2 does not have (nor needs), so one launch line serves both.
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

# The official pipeline's defaults for the vision encoder's resize bounds (pixels of the crop after resizing), set
# server-side: supervisord.conf's --mm-processor-kwargs carries these numbers (checked by test_deploy_consistency).
MIN_PIXELS = 112_896
MAX_PIXELS = 1_003_520
# vLLM's neutral value; the official pipeline sends the caller's value and the caller usually leaves it unset.
REPETITION_PENALTY = 1.0


# The official pipeline's IMAGE_LABELS: pictures, also in the page header or footer (logos). Never sent to the VLM.
IMAGE_KINDS = frozenset({"image", "header_image", "footer_image"})


def task_for(label: str, *, chart_recognition: bool = False, kind: str | None = None) -> Task | None:
    """The VLM task for a region label, or None when the region is not sent (figures, header/footer images;
    charts unless enabled). `kind` is the layout model's own label where it has one (`Region.kind`)."""
    if label == "figure" or kind in IMAGE_KINDS:
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
        # vLLM-specific sampling extras (what the OpenAI client sends as `extra_body`); pixel bounds: see above.
        "skip_special_tokens": True,
        "repetition_penalty": REPETITION_PENALTY,
    }
