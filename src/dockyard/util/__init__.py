"""Helpers that depend on nothing else of dockyard: the bottom of the package graph."""
