"""PostgreSQL + pgvector backend (QA_STORE=pgvector): one schema per collection, one pool per process."""

from qa_service.store.postgres.pool import DEFAULT_TIMEOUT, Postgres, redact

__all__ = ["DEFAULT_TIMEOUT", "Postgres", "redact"]
