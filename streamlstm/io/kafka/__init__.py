"""Kafka scale-out over consumer groups (source, sink, worker, producer)."""
