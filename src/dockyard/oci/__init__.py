"""Pure OCI vocabulary: digests, names, media types and manifests. No I/O here."""
