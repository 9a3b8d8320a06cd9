"""`python -m app doctor` as an operator runs it: a real subprocess, the fake sidecar on a real port.

The fake's `--answers ocr` reads each crop with the CPU OCR engine, so the warm-up page comes back readable (the
`vl` check passes); `--answers echo` answers "region WxH", a sidecar that answers but cannot read (it fails)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.doctor import check_opencv, word_f1
from tests.integration.test_vl_mode import fake_vllm  # noqa: F401 - the fixture
from tests.server_process import ROOT


def doctor(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "PYTHONPATH": str(ROOT),
            "OUTPUT_DIR": str(tmp_path / "output"), "WORKERS": "1"}
    return subprocess.run([sys.executable, "-m", "app", "doctor", *args], cwd=tmp_path, env={**base, **env},
                          capture_output=True, text=True, timeout=300)


def lines(text: str) -> dict[str, str]:
    """{check name: outcome} from doctor's output lines."""
    found = {}
    for line in text.splitlines():
        outcome, _, rest = line.partition(" ")
        found[rest.strip().split(":", 1)[0]] = outcome
    return found


def test_a_sidecar_that_reads_the_page_passes_every_check(fake_vllm, tmp_path):  # noqa: F811
    url = fake_vllm("--answers", "ocr")
    result = doctor(tmp_path, USE_VLM_API="true", VLLM_URL=f"{url}/v1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert lines(result.stdout) == {"models": "ok", "opencv": "ok", "languages": "ok", "layout": "ok", "sidecar": "ok",
                                   "vl": "ok"}
    assert result.stderr == ""
    f1 = float(result.stdout.split("word F1 ")[1].split()[0])
    assert f1 >= 0.9


def test_a_sidecar_that_answers_but_cannot_read_fails_the_vl_check_with_one_line(fake_vllm, tmp_path):  # noqa: F811
    url = fake_vllm("--answers", "echo")
    result = doctor(tmp_path, USE_VLM_API="true", VLLM_URL=f"{url}/v1")
    assert result.returncode == 1
    (failed,) = result.stderr.strip().splitlines()
    assert failed.startswith("FAIL vl: word F1 0.") and "needs >= 0.90" in failed
    assert lines(result.stdout) == {"models": "ok", "opencv": "ok", "languages": "ok", "layout": "ok", "sidecar": "ok"}


def test_a_sidecar_serving_another_model_name_fails_the_sidecar_check(fake_vllm, tmp_path):  # noqa: F811
    url = fake_vllm("--answers", "echo", "--model-name", "some/other-model")
    result = doctor(tmp_path, USE_VLM_API="true", VLLM_URL=f"{url}/v1", VLM_MODEL_NAME="PaddleOCR-VL-0.9B")
    assert result.returncode == 1
    (failed,) = result.stderr.strip().splitlines()
    assert failed.startswith("FAIL sidecar: wrong model") and "--served-model-name PaddleOCR-VL-0.9B" in failed
    assert lines(result.stdout)["vl"] == "skip"


def test_cpu_only_on_a_gpu_node_without_baked_models_names_each_problem(tmp_path):
    result = doctor(tmp_path, "--cpu-only", PROFILE="gpu", PADDLEX_HOME=str(tmp_path / "empty"),
                    LAYOUT_ENGINE="paddlex")
    assert result.returncode == 1
    failed = lines(result.stderr)
    assert failed == {"models": "FAIL", "opencv": "FAIL", "layout": "FAIL"}
    assert "no manifest.json in" in result.stderr
    assert "requires the opencv-contrib-python distribution" in result.stderr
    assert "PP-DocLayoutV3 missing" in result.stderr  # the layout model paired with the default VLM (1.6)
    assert lines(result.stdout) == {"languages": "ok", "sidecar": "skip", "vl": "skip"}


def test_sidecar_checks_are_skipped_when_the_sidecar_is_off(tmp_path):
    result = doctor(tmp_path)
    assert result.returncode == 0, result.stderr
    assert lines(result.stdout) == {"models": "ok", "opencv": "ok", "languages": "ok", "layout": "ok",
                                    "sidecar": "skip", "vl": "skip"}
    assert "installed: " in result.stdout and " ru" in result.stdout.split("languages: ")[1].splitlines()[0]


def test_a_default_language_that_is_not_installed_fails_the_languages_check(tmp_path):
    result = doctor(tmp_path, "--cpu-only", OCR_LANGS="ru+xx")
    assert result.returncode == 1
    (failed,) = result.stderr.strip().splitlines()
    assert failed.startswith("FAIL languages: OCR_LANGS: 'xx' is not installed; installed: ") and "ru" in failed


def test_bad_settings_exit_2_with_one_line(tmp_path):
    result = doctor(tmp_path, WORKERS="zero")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1 and "WORKERS" in result.stderr


@pytest.mark.parametrize(
    ("expected", "got", "score"),
    [("Item Count Alpha 12", "item count alpha 12", 1.0), ("a b c d", "a b", 2 / 3), ("a b", "x y", 0.0),
     ("Beta 7", "<table><tr><td>Beta</td><td>7</td></tr></table>", 1.0)],
)
def test_word_f1_ignores_case_punctuation_and_tags(expected, got, score):
    assert word_f1(expected, got) == pytest.approx(score)


def test_paddlex_needs_exactly_the_contrib_distribution(make_settings):
    paddlex = make_settings(layout_engine="paddlex")
    assert check_opencv(paddlex, ["opencv-contrib-python==4.10.0.84"]).outcome == "ok"
    assert check_opencv(paddlex, ["opencv-python==5.0.0.93"]).outcome == "FAIL"
    two = check_opencv(paddlex, ["opencv-python-headless==5.0.0.93", "opencv-contrib-python==4.10.0.84"])
    assert two.outcome == "FAIL" and "overwrite" in two.detail
    assert check_opencv(make_settings(), ["opencv-python==5.0.0.93"]).outcome == "ok"
    assert check_opencv(make_settings(), []).outcome == "FAIL"
