"""dockyard: an OCI-native container image registry."""

__version__ = "0.1.0"
