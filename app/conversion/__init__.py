"""Conversions, whoever asks: the one sequence (service.py), its input (source.py), a request's outputs
(request_outputs.py) and what a call needs to become a job half-way (handoff.py). Below the HTTP layer: never
imports app.api (tests/unit/test_import_graph.py)."""
