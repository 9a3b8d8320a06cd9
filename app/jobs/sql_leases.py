"""Page leases in the job database: how replicas share a job's pages (claim, renew, hand back) and see each other
(heartbeats, the backlog). Each function runs on a connection inside the transaction `Database` gives it.

Why leases in the job database rather than a queue library: a page is claimed, renewed and checkpointed in the same
transactional store that holds the job, so "this page is done" and "this page's result is stored" are one commit (a
crash repeats only pages in flight, never loses or double-counts one), cancel is visible to a claim in the same
query, and fairness across jobs is an ORDER BY.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from app.jobs.sql_schema import ACTIVE_JOB_IDS, ACTIVE_STATUSES, each_dialect, jobs, pages, replicas
from app.jobs.store import PageLease

_p = sa.bindparam


def _claimable(table: sa.FromClause, now: sa.BindParameter[Any]) -> sa.ColumnElement[bool]:
    """A page anyone may lease: never leased, or its holder stopped renewing."""
    return sa.or_(table.c.state == "pending", sa.and_(table.c.state == "leased", table.c.lease_expires_at < now))


def _claim_query() -> sa.Select[Any]:
    """Up to :limit claimable pages, locked (PostgreSQL, skipping rows other claimers hold), in turn order: a job's
    k-th claimable page takes turn (pages already served + k), so ordering by turn interleaves jobs. The window
    function sits in a CTE because PostgreSQL locks no rows of a query that has one."""
    now = _p("now")
    p, served_pages = pages.alias("p"), pages.alias("s")
    served = sa.select(sa.func.count()).where(served_pages.c.job_id == p.c.job_id,
                                              served_pages.c.state != "pending").scalar_subquery()
    turn = sa.func.row_number().over(partition_by=p.c.job_id, order_by=p.c.page_index) + served
    claimable = (
        sa.select(p.c.job_id, p.c.page_index, jobs.c.created_at, turn.label("turn"))
        .select_from(p.join(jobs, jobs.c.id == p.c.job_id))
        .where(jobs.c.status.in_(ACTIVE_STATUSES), _claimable(p, now))
        .cte("claimable")
    )
    return (
        sa.select(pages.c.job_id, pages.c.page_index)
        .join(claimable, sa.and_(claimable.c.job_id == pages.c.job_id, claimable.c.page_index == pages.c.page_index))
        .where(_claimable(pages, now))
        .order_by(claimable.c.turn, claimable.c.created_at, claimable.c.job_id, pages.c.page_index)
        .limit(_p("limit"))
        .with_for_update(of=pages, skip_locked=True)  # replicas claim side by side (SQLite: one writer anyway)
    )


# Built once with bind parameters: SQLAlchemy reuses their compiled form rather than building one per call.
_CLAIM = _claim_query()
_LEASE = (
    pages.update()
    .where(pages.c.job_id == _p("key_job"), pages.c.page_index == _p("key_index"))
    .values(state="leased", lease_holder=_p("holder"), lease_expires_at=_p("expires"), claims=pages.c.claims + 1)
)
_HELD = sa.and_(pages.c.lease_holder == _p("holder"), pages.c.state == "leased")
_RENEW = pages.update().where(_HELD, pages.c.job_id.in_(ACTIVE_JOB_IDS)).values(lease_expires_at=_p("expires"))
_STOPPED = sa.select(pages.c.job_id).distinct().where(_HELD, pages.c.job_id.not_in(ACTIVE_JOB_IDS))
_RELEASE = pages.update().where(_HELD).values(state="pending", lease_holder=None, lease_expires_at=None)
_BACKLOG = (
    sa.select(sa.func.count()).select_from(pages.join(jobs, jobs.c.id == pages.c.job_id))
    .where(jobs.c.status.in_(ACTIVE_STATUSES), pages.c.state != "done")
)
_LIVE = sa.select(sa.func.count()).where(replicas.c.last_seen > _p("since"))
_FORGET = replicas.delete().where(replicas.c.holder == _p("holder"))


def _heartbeat_upsert(insert: Any) -> sa.Executable:
    beat = insert(replicas).values(holder=_p("holder"), last_seen=_p("now"))
    return beat.on_conflict_do_update(index_elements=[replicas.c.holder], set_={"last_seen": beat.excluded.last_seen})


_HEARTBEAT = each_dialect(_heartbeat_upsert)


def claim(conn: sa.Connection, holder: str, limit: int, now: float, expires: float) -> list[PageLease]:
    """Lease up to `limit` claimable pages to `holder` until `expires`, taking turns across jobs."""
    keys = [(r.job_id, r.page_index) for r in conn.execute(_CLAIM, {"now": now, "limit": limit})]
    if keys:
        conn.execute(_LEASE, [{"key_job": job_id, "key_index": index, "holder": holder, "expires": expires}
                              for job_id, index in keys])
    return [PageLease(job_id, index, holder, expires) for job_id, index in keys]


def renew(conn: sa.Connection, holder: str, expires: float) -> set[str]:
    """Extend `holder`'s leases on pages of active jobs; the jobs it holds pages of that are no longer active."""
    conn.execute(_RENEW, {"holder": holder, "expires": expires})
    return set(conn.execute(_STOPPED, {"holder": holder}).scalars())


def release(conn: sa.Connection, holder: str) -> int:
    return int(conn.execute(_RELEASE, {"holder": holder}).rowcount)


def backlog(conn: sa.Connection) -> int:
    return int(conn.execute(_BACKLOG).scalar_one())


def heartbeat(conn: sa.Connection, holder: str, now: float) -> None:
    conn.execute(_HEARTBEAT[conn.dialect.name], {"holder": holder, "now": now})


def live_replicas(conn: sa.Connection, since: float) -> int:
    return int(conn.execute(_LIVE, {"since": since}).scalar_one())


def forget_replica(conn: sa.Connection, holder: str) -> None:
    conn.execute(_FORGET, {"holder": holder})
