"""Telling people: on-call pages for critical failures, a summary of every run."""
