"""Embedded backend (QA_STORE=faiss): FAISS vectors + SQLite rows under one directory per collection."""
