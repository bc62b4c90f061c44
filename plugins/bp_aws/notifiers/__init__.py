"""Notifiers of the bp_aws package."""
