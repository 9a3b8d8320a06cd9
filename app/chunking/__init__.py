"""Retrieval chunks of a converted document (`chunker.py`), measured by an offline tokenizer (`tokens.py`)."""
