"""The page pool: worker processes every conversion shares, fed fairly, bounded by admission.

- `admission.py`: pages accepted and not finished, and the 503 + Retry-After beyond the bound;
- `scheduler.py`: per-document queues, their turns, chunks of cheap pages, requeue after a crash (pure);
- `workers.py`: worker processes given an initializer, their replacement when they die (supervision);
- `protocol.py`: the messages on a worker's pipe;
- `page_pool.py`: `PagePool`, the dispatcher thread joining them.
"""

from app.runtime.pool.admission import Admission, AdmissionControl
from app.runtime.pool.page_pool import PREFETCH, DocumentQueue, PagePool, PoolStats
from app.runtime.pool.scheduler import MAX_CHUNK_PAGES

__all__ = ["MAX_CHUNK_PAGES", "PREFETCH", "Admission", "AdmissionControl", "DocumentQueue", "PagePool", "PoolStats"]
