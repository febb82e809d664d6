"""Fake protocol peers (OpenAI-compatible, Meta Graph, Telegram Bot API) run on 127.0.0.1."""
