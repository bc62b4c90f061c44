"""GPU fleets: the templates catalogue and desired_config, provisioning, deploy blockers."""
