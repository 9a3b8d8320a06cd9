"""`python warmup.py`: wait for the VLM sidecar, push one bundled page through the whole pipeline, print the
timings as JSON (exit 1 with one clear line on failure). The logic lives in app/warmup.py."""

import sys

from app.warmup import main

if __name__ == "__main__":
    sys.exit(main())
