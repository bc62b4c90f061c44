"""Sensors of the bp_aws package."""
