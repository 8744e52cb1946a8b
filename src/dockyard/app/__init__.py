"""The running process: server wiring, the middleware chain, reload, drain, logs, TLS.

Nothing is imported here, so ``dockyard.app.storage_roots`` (the store a config
describes) loads without the HTTP server for the offline commands.
"""
