"""Watching the gateway: Prometheus metrics, structured access logs, request ids."""
