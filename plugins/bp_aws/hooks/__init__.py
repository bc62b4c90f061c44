"""Hooks of the bp_aws package."""
