"""Shadowlane runtime: publish hook, shadow workers, comparator, local broker and CLI."""
