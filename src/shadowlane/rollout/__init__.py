"""Rollout control: the sticky router that assigns requests to baseline, candidate and shadow."""
