#!/usr/bin/env python3
"""Write a tiny, random-weight PaddleOCR-VL checkpoint that the real vLLM serves like the real one.

Usage: build_tiny_paddleocr_vl.py MODEL_DIR [CHAT_TEMPLATE_PATH [MODEL_NAME]]   (run with the vLLM venv: torch,
safetensors, tokenizers). Nothing is downloaded. What matches PaddlePaddle/PaddleOCR-VL(-1.6): the architecture and
model_type (1.6 keeps the 0.9B architecture and vLLM's model code), the flat config layout with its vision_config,
the special tokens, the image processor config (patch 14, merge 2, mean/std 0.5) and the chat prompt format
PaddleX's genai server uses for MODEL_NAME (default PaddleOCR-VL-1.6-0.9B: "User: <image>prompt\\nAssistant:\\n";
PaddleOCR-VL-0.9B: "...Assistant: ").
What is shrunk: every dimension (a few hundred KB of weights) and the vocabulary (one token per byte, then the
special tokens), so token ids differ but special-token strings and image-token counts do not. The weights are
random, so answers are gibberish; the output head can only emit visible characters (never EOS), so every
answer runs to max_completion_tokens: tests ask for a few.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers

SPECIAL_TOKENS = ["<|begin_of_sentence|>", "<|end_of_sentence|>", "<|IMAGE_PLACEHOLDER|>", "<|IMAGE_START|>",
                  "<|IMAGE_END|>", "<|video_pad|>", "<mask:1>"]
BASE_TOKENS = ["<unk>", "<s>", "</s>"]
READABLE = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\u2581.,:;|-"

# text model, vision tower (dims shrunk; head_dim and the mrope sections keep the real proportions)
HIDDEN, HEADS, KV_HEADS, HEAD_DIM, FFN, LAYERS = 64, 2, 1, 64, 128, 2
V_HIDDEN, V_HEADS, V_FFN, V_LAYERS, PATCH, MERGE, IMAGE_SIZE = 64, 2, 128, 2, 14, 2, 384

# The prompt format of PaddleX's chat templates (paddlex 3.7.2 inference/genai/chat_templates/<model>.jinja): images
# first, then the text, then the assistant's cue, which is the one difference between the models: "Assistant:\n"
# for PaddleOCR-VL-1.6-0.9B, "Assistant: " for PaddleOCR-VL-0.9B. Every literal is a Jinja expression: a `{%-` tag
# would strip the space that ends "User: " and "Assistant: ".
ASSISTANT_CUES = {"PaddleOCR-VL-1.6-0.9B": "Assistant:\\n", "PaddleOCR-VL-0.9B": "Assistant: "}
DEFAULT_MODEL = "PaddleOCR-VL-1.6-0.9B"
_TEMPLATE = (
    "{%- set cls = cls_token if cls_token is defined else '<|begin_of_sentence|>' -%}"
    "{%- set eos = eos_token if eos_token is defined else '</s>' -%}"
    "{{- cls -}}"
    "{%- for m in messages -%}"
    "{%- if m['role'] == 'user' -%}{{- 'User: ' -}}"
    "{%- for c in m['content'] if c['type'] == 'image' -%}{{- '<|IMAGE_START|><|IMAGE_PLACEHOLDER|><|IMAGE_END|>' -}}"
    "{%- endfor -%}"
    "{%- for c in m['content'] if c['type'] == 'text' -%}{{- c['text'] -}}{%- endfor -%}{{- '\\n' -}}"
    "{%- elif m['role'] == 'assistant' -%}{{- '@CUE@' -}}"
    "{%- for c in m['content'] if c['type'] == 'text' -%}{{- c['text'] -}}{%- endfor -%}{{- eos -}}"
    "{%- elif m['role'] == 'system' -%}"
    "{%- for c in m['content'] if c['type'] == 'text' -%}{{- c['text'] ~ '\\n' -}}{%- endfor -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt is not defined or add_generation_prompt -%}{{- '@CUE@' -}}{%- endif -%}"
)


def chat_template(model: str = DEFAULT_MODEL) -> str:
    """The chat template of `model` (a key of ASSISTANT_CUES)."""
    return _TEMPLATE.replace("@CUE@", ASSISTANT_CUES[model])


def build_vocab() -> tuple[dict[str, int], dict[str, int]]:
    vocab: dict[str, int] = {tok: i for i, tok in enumerate(BASE_TOKENS)}
    for byte in range(256):
        vocab[f"<0x{byte:02X}>"] = len(vocab)
    for ch in READABLE:
        vocab.setdefault(ch, len(vocab))
    special = {}
    for tok in SPECIAL_TOKENS:
        special[tok] = vocab[tok] = len(vocab)
    return vocab, special


def write_tokenizer(out: Path, vocab: dict[str, int]) -> None:
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Replace(" ", "\u2581")
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()])
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in BASE_TOKENS + SPECIAL_TOKENS])
    tok.save(str(out / "tokenizer.json"))
    named = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<unk>",
             "cls_token": "<|begin_of_sentence|>", "sep_token": "<|end_of_sentence|>", "mask_token": "<mask:1>"}
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "LlamaTokenizer", "processor_class": "PaddleOCRVLProcessor", **named,
        "add_bos_token": False, "add_eos_token": False, "extra_special_tokens": {"image_token": "<|IMAGE_PLACEHOLDER|>"},
        "clean_up_tokenization_spaces": False, "legacy": True, "model_max_length": 131072,
        "spaces_between_special_tokens": False,
    }, indent=1))
    (out / "special_tokens_map.json").write_text(json.dumps({**named, "additional_special_tokens": SPECIAL_TOKENS[2:6]}))


def write_configs(out: Path, vocab_size: int, special: dict[str, int]) -> None:
    config = {
        "architectures": ["PaddleOCRVLForConditionalGeneration"], "model_type": "paddleocr_vl",
        "hidden_size": HIDDEN, "intermediate_size": FFN, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS, "head_dim": HEAD_DIM, "hidden_act": "silu", "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-05, "rope_theta": 500000, "use_bias": False, "use_cache": True,
        "rope_scaling": {"mrope_section": [8, 12, 12], "rope_type": "default", "type": "default"},
        "vocab_size": vocab_size, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2,
        "tie_word_embeddings": False, "torch_dtype": "bfloat16",
        "image_token_id": special["<|IMAGE_PLACEHOLDER|>"], "video_token_id": special["<|video_pad|>"],
        "vision_start_token_id": special["<|IMAGE_START|>"], "vision_end_token_id": special["<|IMAGE_END|>"],
        "vision_config": {
            "model_type": "paddleocr_vl_vision", "hidden_act": "gelu_pytorch_tanh", "hidden_size": V_HIDDEN,
            "image_size": IMAGE_SIZE, "intermediate_size": V_FFN, "layer_norm_eps": 1e-06,
            "num_attention_heads": V_HEADS, "num_channels": 3, "num_hidden_layers": V_LAYERS, "patch_size": PATCH,
            "spatial_merge_size": MERGE, "temporal_patch_size": 2, "tokens_per_second": 2,
        },
    }
    (out / "config.json").write_text(json.dumps(config, indent=1))
    (out / "generation_config.json").write_text(json.dumps({"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0}))
    # The checkpoint's own pixel bounds, deliberately not the official pipeline's (112896..1003520): the tests can
    # then tell from the prompt-token count that the server's --mm-processor-kwargs is what applied.
    (out / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "PaddleOCRVLImageProcessor", "processor_class": "PaddleOCRVLProcessor",
        "do_convert_rgb": True, "do_normalize": True, "do_rescale": True, "do_resize": True,
        "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "rescale_factor": 1 / 255, "resample": 3,
        "min_pixels": 147384, "max_pixels": 2822400, "patch_size": PATCH, "merge_size": MERGE,
        "temporal_patch_size": 1,
    }, indent=1))


def weights(vocab: dict[str, int]) -> dict[str, torch.Tensor]:
    """Random bf16 tensors under the official checkpoint's names (what vLLM's weight loader maps)."""
    w: dict[str, torch.Tensor] = {}

    def rand(name: str, *shape: int) -> None:
        w[name] = (torch.randn(*shape) * 0.02).to(torch.bfloat16)

    def const(name: str, n: int, value: float) -> None:
        w[name] = torch.full((n,), value, dtype=torch.bfloat16)

    rand("model.embed_tokens.weight", len(vocab), HIDDEN)
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        rand(p + "self_attn.q_proj.weight", HEADS * HEAD_DIM, HIDDEN)
        rand(p + "self_attn.k_proj.weight", KV_HEADS * HEAD_DIM, HIDDEN)
        rand(p + "self_attn.v_proj.weight", KV_HEADS * HEAD_DIM, HIDDEN)
        rand(p + "self_attn.o_proj.weight", HIDDEN, HEADS * HEAD_DIM)
        rand(p + "mlp.gate_proj.weight", FFN, HIDDEN)
        rand(p + "mlp.up_proj.weight", FFN, HIDDEN)
        rand(p + "mlp.down_proj.weight", HIDDEN, FFN)
        const(p + "input_layernorm.weight", HIDDEN, 1.0)
        const(p + "post_attention_layernorm.weight", HIDDEN, 1.0)
    const("model.norm.weight", HIDDEN, 1.0)
    # Output head: rows only for visible ASCII bytes and the readable single characters (no spaces), so greedy
    # decoding prints visible text whatever the prompt, and never reaches a special token or EOS.
    head = torch.randn(len(vocab), HIDDEN)
    for token, index in vocab.items():
        visible_byte = token.startswith("<0x") and 0x21 <= int(token[3:5], 16) <= 0x7E
        if not (visible_byte or (len(token) == 1 and token != "\u2581")):
            head[index] = 0
    w["lm_head.weight"] = head.to(torch.bfloat16)

    v = "visual.vision_model."
    rand(v + "embeddings.patch_embedding.weight", V_HIDDEN, 3, PATCH, PATCH)
    const(v + "embeddings.patch_embedding.bias", V_HIDDEN, 0.0)
    rand(v + "embeddings.position_embedding.weight", (IMAGE_SIZE // PATCH) ** 2, V_HIDDEN)
    for i in range(V_LAYERS):
        p = f"{v}encoder.layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            rand(p + f"self_attn.{proj}.weight", V_HIDDEN, V_HIDDEN)
            const(p + f"self_attn.{proj}.bias", V_HIDDEN, 0.0)
        for norm in ("layer_norm1", "layer_norm2"):
            const(p + f"{norm}.weight", V_HIDDEN, 1.0)
            const(p + f"{norm}.bias", V_HIDDEN, 0.0)
        rand(p + "mlp.fc1.weight", V_FFN, V_HIDDEN)
        const(p + "mlp.fc1.bias", V_FFN, 0.0)
        rand(p + "mlp.fc2.weight", V_HIDDEN, V_FFN)
        const(p + "mlp.fc2.bias", V_HIDDEN, 0.0)
    const(v + "post_layernorm.weight", V_HIDDEN, 1.0)
    const(v + "post_layernorm.bias", V_HIDDEN, 0.0)
    merged = V_HIDDEN * MERGE * MERGE  # the projector sees 2x2 merged patches
    const("mlp_AR.pre_norm.weight", V_HIDDEN, 1.0)
    const("mlp_AR.pre_norm.bias", V_HIDDEN, 0.0)
    rand("mlp_AR.linear_1.weight", merged, merged)
    const("mlp_AR.linear_1.bias", merged, 0.0)
    rand("mlp_AR.linear_2.weight", HIDDEN, merged)
    const("mlp_AR.linear_2.bias", HIDDEN, 0.0)
    return w


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3, 4):
        print(__doc__.splitlines()[2], file=sys.stderr)
        return 2
    out = Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    vocab, special = build_vocab()
    write_tokenizer(out, vocab)
    write_configs(out, len(vocab), special)
    save_file(weights(vocab), str(out / "model.safetensors"), metadata={"format": "pt"})
    template = Path(argv[2]) if len(argv) >= 3 else out / "chat_template.jinja"
    template.parent.mkdir(parents=True, exist_ok=True)
    model = argv[3] if len(argv) == 4 else DEFAULT_MODEL
    template.write_text(chat_template(model))
    print(f"tiny PaddleOCR-VL in {out} (vocabulary {len(vocab)}), {model}'s chat template {template}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
