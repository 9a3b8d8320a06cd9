"""The VLM sidecar (vLLM serving PaddleOCR-VL-0.9B) as seen from the app: client, breaker, prompts, post-processing
and the `vl`-mode region recognizer."""
