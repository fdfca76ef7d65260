"""Archiving: move rows older than a cutoff into archive tables, online, resumable, verified."""
