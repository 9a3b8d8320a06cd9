"""A randomly initialised PP-DocLayoutV3 that PaddleX loads like the real one, for the image rehearsal (no hub here).

`python scripts/build_random_doclayout.py MODELS_DIR [--cache DIR]` writes MODELS_DIR/PP-DocLayoutV3/ and a stand-in
MODELS_DIR/PaddleOCR-VL-1.6-0.9B/ (a config.json only: the build-time smoke test never loads the VLM; vLLM does).
Runs in the rehearsal venv (scripts/rehearse_image.sh), which has paddlex and paddlepaddle at the image's pins.

Everything but the numbers is PaddleX's own: the network is paddlex's PP-DocLayoutV3 model class built from the
config PaddleX's weight converter writes for it (`pdparams2safetensors/model_config.py` MODEL_CONFIGS), the
`inference.yml` (labels, preprocessing, thresholds) is the one that converter writes (`build_inference_meta`), and
the weights are saved in the Hugging Face layout PaddleX's safetensors loader reads (linear weights transposed
as the model's `get_transpose_weight_keys` says). PaddleX then loads it with its `paddle_dynamic` engine; the hub's
real model (inference.json + inference.pdiparams) goes through `paddle_static`. The processors after the network
(box decoding, reading order, polygon masks, NMS, merging) are the same code either way.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

LAYOUT = "PP-DocLayoutV3"
VLM_STAND_IN = "PaddleOCR-VL-1.6-0.9B"
SEED = 20251016


def build(target: Path) -> None:
    """Write the random PP-DocLayoutV3 into `target` (a fresh directory)."""
    import numpy as np
    import paddle
    import yaml
    from paddlex.inference.models.object_detection.modeling import PPDocLayoutV3
    from paddlex.inference.models.object_detection.modeling._config_pp_doclayout_v3 import PPDocLayoutV3Config
    from paddlex.modules.base.utils.pdparams2safetensors.inference_meta import build_inference_meta
    from paddlex.modules.base.utils.pdparams2safetensors.model_config import MODEL_CONFIGS
    from safetensors.numpy import save_file

    paddle.seed(SEED)
    config = MODEL_CONFIGS[LAYOUT]
    model = PPDocLayoutV3(PPDocLayoutV3Config(**config))
    transposed = set(model.get_transpose_weight_keys())
    weights = {key: np.ascontiguousarray(value.numpy().T if key in transposed else value.numpy())
               for key, value in model.get_hf_state_dict().items()}
    target.mkdir(parents=True)
    save_file(weights, str(target / "model.safetensors"))
    (target / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    (target / "inference.yml").write_text(yaml.safe_dump(build_inference_meta(LAYOUT)), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models_dir", type=Path)
    parser.add_argument("--cache", type=Path, default=None, help="reuse (or keep) the built model here")
    args = parser.parse_args(argv)
    models: Path = args.models_dir
    models.mkdir(parents=True, exist_ok=True)
    cached = args.cache / LAYOUT if args.cache else None
    if cached is not None and (cached / "model.safetensors").is_file():
        shutil.copytree(cached, models / LAYOUT)
    else:
        build(models / LAYOUT)
        if cached is not None:  # temp dir, then rename: a half-written cache is never reused
            args.cache.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(dir=args.cache, prefix=".build-"))
            shutil.copytree(models / LAYOUT, staging / LAYOUT)
            os.replace(staging / LAYOUT, cached)
            shutil.rmtree(staging)
    vlm = models / VLM_STAND_IN
    vlm.mkdir(exist_ok=True)
    (vlm / "config.json").write_text(json.dumps({"architectures": ["PaddleOCRVLForConditionalGeneration"],
                                                  "note": "stand-in: the rehearsal never loads the VLM"}))
    print(f"build_random_doclayout: {models / LAYOUT} and a stand-in {vlm}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
