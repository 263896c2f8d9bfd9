"""Acceptance tests: real ``result-relay`` processes over real sockets (marker ``acceptance``)."""
