"""Kafka plumbing: the local single-node broker, bootstrap resolution, topic admin, offsets and the DLQ."""
