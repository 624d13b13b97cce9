"""Offline evaluation against public QA datasets."""
