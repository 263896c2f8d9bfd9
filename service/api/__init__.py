"""The HTTP API: one router per resource, thin, over the store and the domain functions."""
