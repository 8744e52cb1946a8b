"""Who a request comes from and what it may do: authentication and access control.

Pure of HTTP: the aiohttp side lives in ``dockyard.api.auth_middleware``, which feeds
these modules the request's credentials and path and turns their answers into 401/403.
"""
