"""Helpers of the bp_aws building blocks (the provider keeps the same in ``utils/``)."""
