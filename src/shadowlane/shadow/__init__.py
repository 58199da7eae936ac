"""Shadow workers: throttled, read-only replay of mirrored requests against a candidate."""
