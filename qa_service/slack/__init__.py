"""Slack bot: a slack-bolt app over the same QAService (Events API over HTTP, or Socket Mode)."""
