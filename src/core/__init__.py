"""HTTP core shared by every feature: request/response types, routing, errors, config, auth."""
