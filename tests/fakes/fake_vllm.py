"""A stand-in for `vllm serve PaddleOCR-VL-1.6-0.9B`: same HTTP API, strict about the call contract, plausible answers.

    python -m tests.fakes.fake_vllm --port N [--latency-ms 0] [--capacity 256] [--startup-delay-s 0]
        [--error-rate 0] [--hang] [--exit-after N] [--answers ocr|echo] [--model-name PaddleOCR-VL-1.6-0.9B]

- `/health`: 503 until `--startup-delay-s` has passed, then 200 (empty body, like vLLM).
- `/v1/models`: the served model (an OpenAI model list).
- `/v1/chat/completions`: validated against docs/vlm-contract (wrong model -> 404 with vLLM's error body; bad
  image/data URL, missing prompt, image not first, temperature != 0, bad extras -> 400). At most `--capacity`
  requests are worked on at once; the rest wait, as in vLLM's scheduler. Each takes `--latency-ms`.
- Answers: `--answers ocr` (default) reads the crop with the CPU PP-OCR: `OCR:` -> its lines, `Table Recognition:`
  -> an OTSL table of the lines grouped into rows, `Formula Recognition:` -> `\\[ ... \\]`. `--answers echo` gives
  cheap deterministic answers for load and failure tests.
- Failures: `--error-rate` answers that fraction with 500; `--hang` never answers chat requests (health stays
  200: a wedged scheduler); `--exit-after N` kills the process (exit 1) after N answered completions.
- `/fake/stats`: requests seen, in flight now, the most in flight at once (for tests and the benchmark).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import io
import json
import os
import random
import re
import time
import uuid
from typing import Any

import numpy as np
import uvicorn
from PIL import Image, UnidentifiedImageError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.models_manifest import VLM_MODEL

PROMPTS = ("OCR:", "Table Recognition:", "Formula Recognition:", "Chart Recognition:")
_DATA_URL = re.compile(r"^data:image/(jpeg|jpg|png|webp);base64,(.+)$", re.S)


def vllm_error(status: int, message: str, err_type: str, param: str | None = None) -> JSONResponse:
    """vLLM's (>= 0.10) OpenAI-style error body."""
    return JSONResponse({"error": {"message": message, "type": err_type, "param": param, "code": status}}, status)


class ContractError(Exception):
    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


def validate(body: Any, model_name: str) -> tuple[str, Image.Image]:
    """Check one chat completion request against the official call shape; return (prompt, image)."""
    if not isinstance(body, dict):
        raise ContractError("request body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or len(messages) != 1:
        raise ContractError("expected exactly one message (no system prompt)", "messages")
    message = messages[0]
    if not isinstance(message, dict) or message.get("role") != "user":
        raise ContractError("the message must have role 'user'", "messages")
    content = message.get("content")
    if not isinstance(content, list) or len(content) != 2:
        raise ContractError("content must be [image_url, text]", "messages")
    first, second = content
    if not isinstance(first, dict) or first.get("type") != "image_url":
        raise ContractError("the image must come first in the content", "messages")
    url = (first.get("image_url") or {}).get("url") if isinstance(first.get("image_url"), dict) else None
    match = _DATA_URL.match(url or "")
    if not match:
        raise ContractError("image_url.url must be a base64 data URL of a JPEG/PNG image", "messages")
    try:
        image = Image.open(io.BytesIO(base64.b64decode(match.group(2), validate=True)))
        image.load()
    except (binascii.Error, UnidentifiedImageError, OSError, ValueError) as exc:
        raise ContractError(f"cannot decode the image: {exc}", "messages") from None
    if not isinstance(second, dict) or second.get("type") != "text" or not second.get("text"):
        raise ContractError("the prompt text is missing", "messages")
    prompt = second["text"]
    if prompt not in PROMPTS:
        raise ContractError(f"unknown task prompt {prompt!r}; expected one of {PROMPTS}", "messages")
    temperature = body.get("temperature")
    if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) or temperature != 0:
        raise ContractError("temperature must be 0", "temperature")
    max_tokens = body.get("max_completion_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or not 1 <= max_tokens <= 16384:
        raise ContractError("max_completion_tokens must be an integer in [1, max_model_len]", "max_completion_tokens")
    if body.get("skip_special_tokens") is not True:
        raise ContractError("skip_special_tokens must be true", "skip_special_tokens")
    penalty = body.get("repetition_penalty")
    if penalty is not None and (not isinstance(penalty, (int, float)) or penalty <= 0):
        raise ContractError("repetition_penalty must be > 0", "repetition_penalty")
    if "mm_processor_kwargs" in body:
        # As vLLM from 0.31 answers unless started with --trust-request-mm-kwargs (0.11.2, the image's, has no such
        # flag and takes no per-request kwargs either way): the bounds are set server-side.
        raise ContractError("Per-request mm_processor_kwargs are disabled; set them with --mm-processor-kwargs",
                            "mm_processor_kwargs")
    return prompt, image.convert("RGB")


# --- answers ---------------------------------------------------------------------------------------------------------
class Reader:
    """CPU PP-OCR over a crop: the project's engine when it exists, else rapidocr directly."""

    def __init__(self) -> None:
        self._engine: Any = None
        self._kind = ""

    def _load(self) -> None:
        try:
            from app.pipeline.recognize.ocr import create_ocr_engine
            from app.settings import Settings

            engine = create_ocr_engine(Settings(_env_file=None))  # type: ignore[call-arg]
            engine.load()
            self._engine, self._kind = engine, "app"
        except ImportError:
            from rapidocr import RapidOCR

            self._engine, self._kind = RapidOCR(), "rapidocr"

    def lines(self, image: Image.Image) -> list[tuple[str, tuple[float, float, float, float]]]:
        if self._engine is None:
            self._load()
        # The crops come cut exactly to the layout box, as upstream's CropByBoxes cuts them: the VLM reads text up to
        # the edge, PP-OCR's detector does not, so the stand-in reads the crop on a white border (boxes shifted back).
        pad = OCR_BORDER_PX
        rgb = np.pad(np.asarray(image), ((pad, pad), (pad, pad), (0, 0)), constant_values=255)
        if self._kind == "app":
            return [(line.text, _shift(tuple(line.bbox), pad))  # type: ignore[arg-type]
                    for line in self._engine.recognize(rgb)]  # type: ignore[misc]
        out = self._engine(rgb)
        if out.txts is None:
            return []
        found = []
        for text, box in zip(out.txts, out.boxes):
            xs, ys = [p[0] for p in box], [p[1] for p in box]
            found.append((text, _shift((min(xs), min(ys), max(xs), max(ys)), pad)))
        return found


OCR_BORDER_PX = 16


def _shift(box: tuple[float, float, float, float], pad: int) -> tuple[float, float, float, float]:
    return (box[0] - pad, box[1] - pad, box[2] - pad, box[3] - pad)


def _rows(lines: list[tuple[str, tuple[float, float, float, float]]]) -> list[list[str]]:
    """Group OCR lines into table rows by vertical overlap, each row left to right."""
    rows: list[list[tuple[str, tuple[float, float, float, float]]]] = []
    for text, box in sorted(lines, key=lambda item: (item[1][1] + item[1][3]) / 2):
        centre = (box[1] + box[3]) / 2
        if rows and rows[-1][0][1][1] <= centre <= rows[-1][0][1][3]:
            rows[-1].append((text, box))
        else:
            rows.append([(text, box)])
    return [[text for text, _ in sorted(row, key=lambda item: item[1][0])] for row in rows]


def answer(prompt: str, image: Image.Image, mode: str, reader: Reader) -> str:
    w, h = image.size
    if mode == "echo":
        if prompt == "Table Recognition:":
            return f"<fcel>width<fcel>height<nl><fcel>{w}<fcel>{h}<nl>"
        if prompt == "Formula Recognition:":
            return f"\\[ w = {w}, h = {h} \\]"
        return f"region {w}x{h}"
    lines = reader.lines(image)
    if prompt == "Table Recognition:":
        rows = _rows(lines)
        width = max((len(r) for r in rows), default=0)
        return "".join("".join(f"<fcel>{c}" for c in r) + "<ecel>" * (width - len(r)) + "<nl>" for r in rows)
    # Read like the VLM does: line by line, words left to right (OCR boxes may be single words).
    text = "\n".join(" ".join(row) for row in _rows(lines))
    if prompt == "Formula Recognition:":
        return f"\\[ {text or 'E = m c^{2}'} \\]"
    if prompt == "Chart Recognition:":
        return "label | value\n" + "\n".join(f"{t} | " for t, _ in lines)
    return text


# --- the server -------------------------------------------------------------------------------------------------------
class FakeVllm:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.ready_at = time.monotonic() + args.startup_delay_s
        self.capacity = asyncio.Semaphore(args.capacity)
        self.reader = Reader()
        self.requests = 0
        self.answered = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.rng = random.Random(args.seed)

    @property
    def ready(self) -> bool:
        return time.monotonic() >= self.ready_at

    async def health(self, request: Request) -> Response:
        return Response(status_code=200 if self.ready else 503)

    async def models(self, request: Request) -> Response:
        if not self.ready:
            return vllm_error(503, "the engine is starting", "ServiceUnavailable")
        card = {
            "id": self.args.model_name,
            "object": "model",
            "created": int(time.time()),
            "owned_by": "vllm",
            "root": "/models/PaddleOCR-VL",
            "parent": None,
            "max_model_len": 16384,
        }
        return JSONResponse({"object": "list", "data": [card]})

    async def stats(self, request: Request) -> Response:
        return JSONResponse(
            {"requests": self.requests, "answered": self.answered, "in_flight": self.in_flight,
             "max_in_flight": self.max_in_flight}
        )

    async def chat(self, request: Request) -> Response:
        if not self.ready:
            return vllm_error(503, "the engine is starting", "ServiceUnavailable")
        try:
            body = json.loads(await request.body())
        except ValueError:
            return vllm_error(400, "the body is not JSON", "BadRequestError")
        if isinstance(body, dict) and body.get("model") != self.args.model_name:
            return vllm_error(404, f"The model `{body.get('model')}` does not exist.", "NotFoundError", "model")
        try:
            prompt, image = validate(body, self.args.model_name)
        except ContractError as exc:
            return vllm_error(400, str(exc), "BadRequestError", exc.param)
        self.requests += 1
        async with self.capacity:  # like vLLM's scheduler: excess requests wait for a slot
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                if self.args.hang:
                    await asyncio.Event().wait()
                started = time.monotonic()
                if self.args.error_rate and self.rng.random() < self.args.error_rate:
                    return vllm_error(500, "injected failure", "InternalServerError")
                if self.args.answers == "ocr":
                    text = await asyncio.to_thread(answer, prompt, image, "ocr", self.reader)
                else:
                    text = answer(prompt, image, "echo", self.reader)
                remaining = self.args.latency_ms / 1000 - (time.monotonic() - started)
                if remaining > 0:
                    await asyncio.sleep(remaining)
            finally:
                self.in_flight -= 1
        self.answered += 1
        if self.args.exit_after and self.answered >= self.args.exit_after:
            os._exit(1)  # a crash, not a shutdown: no response for whoever is still waiting
        w, h = image.size
        prompt_tokens = 8 + max(1, (w * h) // (28 * 28))
        completion_tokens = max(1, len(text) // 3)
        return JSONResponse(
            {
                "id": f"chatcmpl-{uuid.uuid4().hex}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": self.args.model_name,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text, "tool_calls": []},
                        "logprobs": None,
                        "finish_reason": "stop",
                        "stop_reason": None,
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            }
        )


def build_app(args: argparse.Namespace) -> Starlette:
    fake = FakeVllm(args)
    return Starlette(
        routes=[
            Route("/health", fake.health),
            Route("/v1/models", fake.models),
            Route("/v1/chat/completions", fake.chat, methods=["POST"]),
            Route("/fake/stats", fake.stats),
        ]
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="fake_vllm", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model-name", default=VLM_MODEL)  # what the image serves by default
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--capacity", type=int, default=256)
    parser.add_argument("--startup-delay-s", type=float, default=0.0)
    parser.add_argument("--error-rate", type=float, default=0.0)
    parser.add_argument("--hang", action="store_true")
    parser.add_argument("--exit-after", type=int, default=0)
    parser.add_argument("--answers", choices=("ocr", "echo"), default="ocr")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # Startup delay counts from process start, like vLLM loading weights before it answers /health.
    uvicorn.run(build_app(args), host=args.host, port=args.port, log_level="warning", access_log=False,
                timeout_keep_alive=30, backlog=2048, limit_concurrency=None)


if __name__ == "__main__":
    main()
