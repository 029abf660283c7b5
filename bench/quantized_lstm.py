"""com.microsoft DynamicQuantizeLSTM files (the corpus's pre-quantized files, fetched): lowp's
Session and ONNX Runtime on one thread, checked identical first, then timed in alternation
(median ms; lowp / ONNX Runtime, lower is better).

    python bench/quantized_lstm.py [--repeats 30] [--budget 30] [--models NAME ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.prequantized import main  # noqa: E402

if __name__ == "__main__":
    main({"DynamicQuantizeLSTM"}, __doc__)
