"""Other services' APIs spoken by this one (PaddleX serving): request models and answer shapes, no HTTP."""
