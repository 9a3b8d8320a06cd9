"""One schema for both dialects: SQLite gains what PostgreSQL already had (page rows from submission on, with a
state and a lease; the replicas table), loses the pages_done trigger (the store counts in the checkpoint's own
transaction on both), and PostgreSQL drops its hand-rolled `schema_version` (alembic_version replaces it).

SQLite cannot add a primary-keyed table's constraints in place, so pages is rebuilt: every stored row is a finished
page (`done`), and the pages still missing of active jobs get their `pending` rows, so the backlog and claims see
them as they see a new job's.

Revision ID: r0002
"""

import json

from alembic import op
from sqlalchemy import text

from app.jobs.migrations.versions.r0001_release_before_alembic import POSTGRES

revision = "r0002"
down_revision = "r0001"
branch_labels = None
depends_on = None

_PAGES, _PAGES_CLAIMABLE, _REPLICAS = POSTGRES[-3:]


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        op.execute("DROP TABLE IF EXISTS schema_version")
        return
    op.execute("DROP TRIGGER IF EXISTS pages_done_after_checkpoint")
    op.execute("ALTER TABLE pages RENAME TO pages_release_1")
    op.execute(_PAGES)
    op.execute(
        "INSERT INTO pages (job_id, page_index, state, result, computed_at, computations)"
        " SELECT job_id, page_index, 'done', result, computed_at, computations FROM pages_release_1"
    )
    op.execute("DROP TABLE pages_release_1")
    op.execute(_PAGES_CLAIMABLE)
    op.execute(_REPLICAS)
    active = bind.execute(text("SELECT id, page_indices FROM jobs WHERE status IN ('queued', 'running')")).all()
    for job_id, page_indices in active:
        done = {r[0] for r in bind.execute(text("SELECT page_index FROM pages WHERE job_id = :id"), {"id": job_id})}
        missing = [{"id": job_id, "index": i} for i in json.loads(page_indices) if i not in done]
        if missing:
            bind.execute(text("INSERT INTO pages (job_id, page_index) VALUES (:id, :index)"), missing)


def downgrade() -> None:
    raise NotImplementedError("the job database does not go back to an earlier schema")
