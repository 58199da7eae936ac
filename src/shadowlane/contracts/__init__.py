"""Shadowlane wire contracts: versioned, frozen pydantic models and the topic registry."""
