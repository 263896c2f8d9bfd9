"""Runnable examples of wiring a bot to result-relay."""
