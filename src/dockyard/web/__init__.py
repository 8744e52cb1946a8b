"""What the HTTP side shares: application and request keys, spec errors, the mirror seam.

Below ``api``, ``ext`` and ``ui`` (which never import each other) and above ``auth`` and
``storage``: a handler, an extension and the running process meet here, not in one
another's modules.
"""
