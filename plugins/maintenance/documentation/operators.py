"""DocumentationReviewOperator: Friday's documentation updates review, read-only."""

from __future__ import annotations

from maintenance.operator import MaintenanceOperator


class DocumentationReviewOperator(MaintenanceOperator):
    """Stale documents, broken relative links, and recent incidents no runbook mentions."""

    def run(self, run):
        from datetime import timedelta
        from pathlib import Path

        from maintenance.documentation.review import incidents_missing_from_runbooks, review_folder
        from maintenance.errors import InputError

        settings = run.policy.documentation
        # Ages count from the run's date, so a re-run or a backfill judges as that day did.
        as_of = run.logical_date
        folders = [(f"documentation.folders[{i}]", f) for i, f in enumerate(settings.folders)]
        if settings.runbooks is not None:
            folders.append(("documentation.runbooks", settings.runbooks))
        documents, runbook_files = {}, []  # by path: a runbooks folder inside a docs folder counts once
        for field, folder in folders:
            try:
                found = review_folder(Path(folder.path), folder.patterns, now=as_of,
                                      stale_after_days=settings.stale_after_days)
            except FileNotFoundError as exc:
                raise InputError(f"{field}.path: {exc}") from None
            for doc in found:
                documents.setdefault(doc.path, doc)
            if field == "documentation.runbooks":
                runbook_files = [Path(d.path) for d in found]
        for doc in documents.values():
            if doc.stale:
                run.ledger.record_finding("doc_stale", doc.path, "info",
                                          f"last changed {doc.changed[:10]} ({doc.age_days:.0f} days, limit "
                                          f"{settings.stale_after_days:.0f}): review it", doc.as_dict())
            if doc.broken_links:
                run.ledger.record_finding("doc_broken_link", doc.path, "warning",
                                          f"links to nothing: {', '.join(doc.broken_links)}", doc.as_dict())
        missing = []
        if settings.runbooks is not None:
            since = as_of - timedelta(days=settings.incident_lookback_days)
            missing = incidents_missing_from_runbooks(run.ledger.conn, run.ledger.schema_name, runbook_files, since)
            for item in missing:
                run.ledger.record_finding("runbook_missing", item["incident"], "warning",
                                          f"{item['incident']} ({item['severity']}: {item['summary']}; cause: "
                                          f"{item['cause']}) is in no runbook: write down what to do next time", item)
        return {"documents": len(documents), "stale": [d.path for d in documents.values() if d.stale],
                "broken_links": {d.path: d.broken_links for d in documents.values() if d.broken_links},
                "incidents_without_runbook": missing}

    def describe(self, summary):
        return (f"{summary['documents']} documents: {len(summary['stale'])} stale, "
                f"{len(summary['broken_links'])} with broken links; "
                f"{len(summary['incidents_without_runbook'])} incidents in no runbook")
