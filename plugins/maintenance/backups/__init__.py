"""PostgreSQL backups: produce with a manifest, verify daily, restore-test weekly, drill monthly."""
