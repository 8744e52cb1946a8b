"""Optional features, each switched on in config (``extensions``): metrics, scrub."""
