"""``dockyard bench``: a load generator for OCI registries, run against one or more URLs.

Only ratios between targets measured in the same run mean anything on a shared machine,
so the runner interleaves targets and rotates their order; see ``runner``.
"""
