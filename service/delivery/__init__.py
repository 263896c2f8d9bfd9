"""Delivery: the pure retry policy and routing, and the worker that drives the sender."""
