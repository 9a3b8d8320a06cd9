"""Where results go: the local output directory (always) and an S3 bucket (when configured)."""
