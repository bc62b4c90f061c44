"""Changing what a fleet runs: bundle rollouts, the per-fleet lock, pointer restores, audit."""
