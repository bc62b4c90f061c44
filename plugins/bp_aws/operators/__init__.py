"""Operators of the bp_aws package."""
