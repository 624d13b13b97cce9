"""Turning files into source documents, sentences and passages."""
