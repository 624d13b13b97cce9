"""The persisted index: FAISS vectors + SQLite documents, wrapped as a Haystack DocumentStore."""
