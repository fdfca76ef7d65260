"""Logs and object storage: rotate, compress, archive to S3 with verification, clean up;
S3 lifecycle rules."""
