"""Generative answers grounded in cited sentences (optional LLM; the extractive answer stays the default)."""
