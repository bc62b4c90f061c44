"""Triggers of the bp_aws package."""
