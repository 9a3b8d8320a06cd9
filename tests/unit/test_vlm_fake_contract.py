"""The fake vLLM is only useful if it is strict: every deviation from the official call shape is refused."""

from __future__ import annotations

import copy
import io

import httpx
import pytest
from PIL import Image

from app.models_manifest import VLM_MODEL
from app.vlm.prompts import chat_request
from tests.fakes.fake_vllm import build_app, parse_args


@pytest.fixture
def anyio_backend():
    return "asyncio"


def good_body() -> dict:
    buf = io.BytesIO()
    Image.new("RGB", (30, 20), "white").save(buf, "JPEG")
    return chat_request(model=VLM_MODEL, jpeg=buf.getvalue(), task="ocr", max_completion_tokens=128)


def client(*flags: str) -> httpx.AsyncClient:
    app = build_app(parse_args(["--port", "1", "--answers", "echo", *flags]))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://fake")


@pytest.mark.anyio
async def test_valid_request_gets_an_openai_shaped_answer_with_usage():
    async with client() as http:
        answer = (await http.post("/v1/chat/completions", json=good_body())).json()
    assert answer["object"] == "chat.completion" and answer["model"] == VLM_MODEL
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": "region 30x20", "tool_calls": []}
    assert answer["usage"]["total_tokens"] == answer["usage"]["prompt_tokens"] + answer["usage"]["completion_tokens"]


@pytest.mark.anyio
async def test_wrong_model_name_is_404_with_vllms_error_body():
    body = good_body() | {"model": "PaddlePaddle/PaddleOCR-VL"}
    async with client() as http:
        response = await http.post("/v1/chat/completions", json=body)
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "NotFoundError"
    assert "does not exist" in response.json()["error"]["message"]


def _image_second(body):
    body["messages"][0]["content"].reverse()


def _bad_data_url(body):
    body["messages"][0]["content"][0]["image_url"]["url"] = "data:image/jpeg;base64,not-an-image!!"


def _not_an_image(body):
    body["messages"][0]["content"][0]["image_url"]["url"] = "data:image/jpeg;base64,aGVsbG8="


def _no_prompt(body):
    body["messages"][0]["content"][1]["text"] = ""


def _system_prompt(body):
    body["messages"].insert(0, {"role": "system", "content": "be nice"})


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("mutate", "param"),
    [
        (_image_second, "messages"),
        (_bad_data_url, "messages"),
        (_not_an_image, "messages"),
        (_no_prompt, "messages"),
        (_system_prompt, "messages"),
        (lambda b: b.update(temperature=0.7), "temperature"),
        (lambda b: b.pop("max_completion_tokens"), "max_completion_tokens"),
        (lambda b: b.update(skip_special_tokens=False), "skip_special_tokens"),
        (lambda b: b.update(mm_processor_kwargs={"min_pixels": 1, "max_pixels": 2}), "mm_processor_kwargs"),
    ],
)
async def test_contract_violations_are_400(mutate, param):
    body = copy.deepcopy(good_body())
    mutate(body)
    async with client() as http:
        response = await http.post("/v1/chat/completions", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


@pytest.mark.anyio
async def test_slow_start_answers_503_until_ready_and_lists_the_model_after():
    async with client("--startup-delay-s", "30") as http:
        assert (await http.get("/health")).status_code == 503
        assert (await http.get("/v1/models")).status_code == 503
        assert (await http.post("/v1/chat/completions", json=good_body())).status_code == 503
    async with client() as http:
        assert (await http.get("/health")).status_code == 200
        assert [m["id"] for m in (await http.get("/v1/models")).json()["data"]] == [VLM_MODEL]


@pytest.mark.anyio
async def test_error_injection_answers_500():
    async with client("--error-rate", "1.0") as http:
        response = await http.post("/v1/chat/completions", json=good_body())
    assert response.status_code == 500 and response.json()["error"]["type"] == "InternalServerError"
