"""Users, API keys and the caller's own profile."""
