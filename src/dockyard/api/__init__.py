"""The distribution-spec HTTP surface, one module per resource."""
