"""FinScribe: fine-tune PaddleOCR-VL into an exact financial-document extractor."""

__version__ = "0.1.0"
