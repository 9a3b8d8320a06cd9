"""Logs and metrics for the service: JSON log lines with a request id, Prometheus counters and histograms."""
