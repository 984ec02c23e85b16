"""Chain access: networks, JSON-RPC, addresses, signatures."""
