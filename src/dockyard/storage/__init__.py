"""Storage: each repository an OCI image layout under a root directory.

Nothing here knows HTTP. Failures are typed exceptions from ``storage.errors`` that the API
layer maps to the spec's error codes.
"""
