"""PaddleOCR-VL appliance: PDFs in, Markdown and structured JSON out."""

__version__ = "0.1.0"
