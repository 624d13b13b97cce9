"""FastAPI application: thin routes over QAService."""
