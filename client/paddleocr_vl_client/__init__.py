"""Python client for the PaddleOCR-VL appliance (see client/README.md)."""

from paddleocr_vl_client.client import AsyncClient, Client
from paddleocr_vl_client.models import (
    ApiError, Block, BlockRef, Chunk, ChunkSet, ConversionResult, Job, Page,
)

__all__ = ["ApiError", "AsyncClient", "Block", "BlockRef", "Chunk", "ChunkSet", "Client", "ConversionResult", "Job",
           "Page"]
