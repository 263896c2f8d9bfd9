"""result-relay: durable delivery of long-running Discord bot results."""

__version__ = "0.1.0"
