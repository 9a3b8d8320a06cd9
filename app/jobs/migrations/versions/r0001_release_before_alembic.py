"""The job database as the last release before migrations created it (HEAD 011e598): each dialect had its own
schema. SQLite: jobs and pages, a page row only once checkpointed, pages_done kept by a trigger, callback columns
added by an ALTER loop. PostgreSQL: the same jobs table plus page leases, the replicas table and its own
`schema_version` table.

Statements are verbatim but for `IF NOT EXISTS`, so a database that release created (it has no alembic_version
yet) runs this revision as a no-op and is stamped; a new database is created as that release would have, and then
r0002 brings both dialects to the one schema. Tests build "release N-1" databases from these statements.

Revision ID: r0001
"""

from alembic import op
from sqlalchemy import text

revision = "r0001"
down_revision = None
branch_labels = None
depends_on = None

SQLITE_JOBS = """
CREATE TABLE IF NOT EXISTS jobs (
    id              TEXT PRIMARY KEY,
    owner           TEXT NOT NULL DEFAULT '',
    idempotency_key TEXT,
    status          TEXT NOT NULL,
    options         TEXT NOT NULL,
    filename        TEXT,
    upload_sha256   TEXT NOT NULL,
    page_count      INTEGER NOT NULL,
    page_indices    TEXT NOT NULL,
    pages_total     INTEGER NOT NULL,
    pages_done      INTEGER NOT NULL DEFAULT 0,
    runs            INTEGER NOT NULL DEFAULT 0,
    created_at      REAL NOT NULL,
    started_at      REAL,
    finished_at     REAL,
    error_type      TEXT,
    error_message   TEXT,
    s3              TEXT,
    callback_url    TEXT,
    callback        TEXT
)"""

JOBS_INDEXES = [
    "CREATE UNIQUE INDEX IF NOT EXISTS jobs_idempotency ON jobs (owner, idempotency_key)"
    " WHERE idempotency_key IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS jobs_owner_created ON jobs (owner, created_at)",
    "CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, finished_at)",
]

SQLITE_PAGES = """
CREATE TABLE IF NOT EXISTS pages (
    job_id       TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    page_index   INTEGER NOT NULL,
    result       TEXT NOT NULL,
    computed_at  REAL NOT NULL,
    computations INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (job_id, page_index)
)"""

SQLITE_PAGES_DONE_TRIGGER = """
CREATE TRIGGER IF NOT EXISTS pages_done_after_checkpoint AFTER INSERT ON pages BEGIN
    UPDATE jobs SET pages_done = (SELECT COUNT(*) FROM pages WHERE job_id = NEW.job_id) WHERE id = NEW.job_id;
END"""

SQLITE = [SQLITE_JOBS, *JOBS_INDEXES, SQLITE_PAGES, SQLITE_PAGES_DONE_TRIGGER]

POSTGRES = [
    SQLITE_JOBS.replace("REAL", "DOUBLE PRECISION"),
    *JOBS_INDEXES,
    """
    CREATE TABLE IF NOT EXISTS pages (
        job_id           TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        page_index       INTEGER NOT NULL,
        state            TEXT NOT NULL DEFAULT 'pending',
        lease_holder     TEXT,
        lease_expires_at DOUBLE PRECISION,
        claims           INTEGER NOT NULL DEFAULT 0,
        result           TEXT,
        computed_at      DOUBLE PRECISION,
        computations     INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (job_id, page_index)
    )""",
    "CREATE INDEX IF NOT EXISTS pages_claimable ON pages (state, lease_expires_at)",
    "CREATE TABLE IF NOT EXISTS replicas (holder TEXT PRIMARY KEY, last_seen DOUBLE PRECISION NOT NULL)",
]

# SQLite databases older still, from before completion webhooks, lack these columns.
_SQLITE_LATE_COLUMNS = ("callback_url", "callback")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        for statement in POSTGRES:
            op.execute(statement)
        return
    for statement in SQLITE:
        op.execute(statement)
    columns = {row[1] for row in bind.execute(text("PRAGMA table_info(jobs)"))}
    for column in _SQLITE_LATE_COLUMNS:
        if column not in columns:
            op.execute(f"ALTER TABLE jobs ADD COLUMN {column} TEXT")


def downgrade() -> None:
    raise NotImplementedError("the job database does not go back to before migrations")
