"""Durable asynchronous jobs: SQLite-backed state with page checkpoints, resumed after a restart (manager.py)."""
