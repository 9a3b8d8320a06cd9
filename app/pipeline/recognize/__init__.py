"""Recognizers: OCR engines for page images (`ocr.py`)."""
