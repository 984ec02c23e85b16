"""The CPython runtime adapter: ASGI app, dev server, configuration loading and the CLI."""
