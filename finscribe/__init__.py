"""FinScribe: fine-tune PaddleOCR-VL into an exact financial-document extractor."""

import logging

__version__ = "0.1.0"

# transformers imports torchao whenever it is installed; torchao then logs a warning for each of
# its CUDA-only kernel libraries it cannot load on a CPU build of torch, and torch logs a
# deprecation notice for two of torchao's enums. Neither affects FinScribe (CPU INT8 uses
# torchao's Python path), so keep them from burying every command's real output.
logging.getLogger("torchao").setLevel(logging.ERROR)
logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)
