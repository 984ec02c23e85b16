"""Database access shaped like Cloudflare D1, with a D1 adapter and a SQLite adapter."""
