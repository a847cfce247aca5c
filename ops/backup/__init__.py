"""Backups, restores and restore drills: streamed pg_dump into local and S3 repositories."""
