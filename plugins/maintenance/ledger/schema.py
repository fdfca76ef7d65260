"""The ledger's schema, created and migrated by the project itself.

Migrations are numbered and applied in order, each in its own transaction, under
an advisory lock so two tasks starting at once do not race. Applying them again
is a no-op. The schema name comes from the policy and is composed as an
identifier, never formatted into SQL text.
"""

from __future__ import annotations

from psycopg import sql

_LOCK_KEY = 7_345_001  # pg_advisory_xact_lock key for ledger migrations

MIGRATIONS: list[tuple[int, str]] = [
    (1, """
    CREATE TABLE {s}.task_runs (
        id            bigserial PRIMARY KEY,
        dag_id        text NOT NULL,
        task_id       text NOT NULL,
        run_id        text NOT NULL,
        map_index     integer NOT NULL DEFAULT -1,
        try_number    integer NOT NULL,
        logical_date  timestamptz,
        started_at    timestamptz NOT NULL DEFAULT now(),
        ended_at      timestamptz,
        outcome       text NOT NULL DEFAULT 'running',
        dry_run       boolean NOT NULL DEFAULT false,
        forced_reason text,
        summary       jsonb NOT NULL DEFAULT '{{}}',
        UNIQUE (dag_id, task_id, run_id, map_index, try_number)
    );
    CREATE TABLE {s}.actions (
        id             bigserial PRIMARY KEY,
        dag_id         text NOT NULL,
        task_id        text NOT NULL,
        run_id         text NOT NULL,
        map_index      integer NOT NULL DEFAULT -1,
        try_number     integer NOT NULL,
        seq            integer NOT NULL,
        logical_date   timestamptz,
        system         text NOT NULL,
        target         text NOT NULL,
        action         text NOT NULL,
        plan           jsonb NOT NULL DEFAULT '{{}}',
        outcome        text NOT NULL CHECK (outcome IN
                           ('planned', 'applied', 'skipped', 'failed', 'rolled_back')),
        rows_affected  bigint,
        bytes_affected bigint,
        started_at     timestamptz NOT NULL,
        duration_ms    double precision NOT NULL DEFAULT 0,
        lock_wait_ms   double precision NOT NULL DEFAULT 0,
        dry_run        boolean NOT NULL DEFAULT false,
        forced_reason  text,
        error          text,
        UNIQUE (dag_id, task_id, run_id, map_index, try_number, seq)
    );
    CREATE INDEX ON {s}.actions (started_at);
    CREATE INDEX ON {s}.actions (system, action, started_at);
    CREATE TABLE {s}.findings (
        id          bigserial PRIMARY KEY,
        dag_id      text NOT NULL,
        task_id     text NOT NULL,
        run_id      text NOT NULL,
        check_name  text NOT NULL,
        target      text NOT NULL,
        severity    text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
        message     text NOT NULL,
        evidence    jsonb NOT NULL DEFAULT '{{}}',
        recorded_at timestamptz NOT NULL DEFAULT now(),
        resolved_at timestamptz,
        UNIQUE (dag_id, task_id, run_id, check_name, target)
    );
    CREATE INDEX ON {s}.findings (recorded_at);
    CREATE TABLE {s}.metrics (
        id          bigserial PRIMARY KEY,
        dag_id      text NOT NULL,
        task_id     text NOT NULL,
        run_id      text NOT NULL,
        system      text NOT NULL,
        target      text NOT NULL,
        name        text NOT NULL,
        value       double precision NOT NULL,
        recorded_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (dag_id, task_id, run_id, system, target, name)
    );
    CREATE INDEX ON {s}.metrics (system, name, recorded_at);
    CREATE TABLE {s}.incidents (
        id               bigserial PRIMARY KEY,
        external_key     text UNIQUE,
        severity         text NOT NULL CHECK (severity IN ('sev1', 'sev2', 'sev3', 'sev4')),
        summary          text NOT NULL,
        outage           boolean NOT NULL DEFAULT false,
        planned          boolean NOT NULL DEFAULT false,
        opened_at        timestamptz NOT NULL,
        resolved_at      timestamptz,
        cause            text,
        caused_by_action bigint REFERENCES {s}.actions (id),
        CHECK (resolved_at IS NULL OR resolved_at >= opened_at)
    );
    CREATE INDEX ON {s}.incidents (opened_at);
    """),
    (2, """
    -- What on-call has been paged about: one row per open problem (e.g. one vulnerable package),
    -- so the same problem pages once, then reminds at the policy's interval until it is gone.
    CREATE TABLE {s}.pages (
        page_key       text PRIMARY KEY,
        scope          text NOT NULL,
        message        text NOT NULL,
        first_paged_at timestamptz NOT NULL,
        last_paged_at  timestamptz NOT NULL,
        times_paged    integer NOT NULL DEFAULT 1,
        resolved_at    timestamptz
    );
    CREATE INDEX ON {s}.pages (scope) WHERE resolved_at IS NULL;
    """),
    (3, """
    -- A step is recorded while it runs ('running', its count kept up to date), so a try killed
    -- midway leaves what it did; the next try closes it as 'interrupted'.
    ALTER TABLE {s}.actions DROP CONSTRAINT actions_outcome_check;
    ALTER TABLE {s}.actions ADD CONSTRAINT actions_outcome_check CHECK (outcome IN
        ('planned', 'applied', 'skipped', 'failed', 'rolled_back', 'running', 'interrupted'));
    CREATE INDEX ON {s}.task_runs (dag_id, task_id, outcome) WHERE outcome = 'running';
    """),
    (4, """
    -- On-call acknowledges an incident (time to acknowledge); its page follows it.
    ALTER TABLE {s}.incidents ADD COLUMN acknowledged_at timestamptz;
    """),
    (5, """
    -- An incident's alert labels (its type, the playbook it matches), what happened to it in order
    -- (the post-mortem's timeline: opened, told, paged, playbook steps and checks, acknowledged,
    -- resolved), and the post-mortem's action items, open until closed from the incident form.
    ALTER TABLE {s}.incidents ADD COLUMN labels jsonb NOT NULL DEFAULT '{{}}';
    CREATE TABLE {s}.incident_events (
        id          bigserial PRIMARY KEY,
        incident_id bigint NOT NULL REFERENCES {s}.incidents (id),
        at          timestamptz NOT NULL DEFAULT now(),
        kind        text NOT NULL,
        text        text NOT NULL,
        detail      jsonb NOT NULL DEFAULT '{{}}',
        event_key   text UNIQUE
    );
    CREATE INDEX ON {s}.incident_events (incident_id, at);
    CREATE TABLE {s}.action_items (
        id          bigserial PRIMARY KEY,
        incident_id bigint NOT NULL REFERENCES {s}.incidents (id),
        title       text NOT NULL,
        owner       text NOT NULL,
        due         date NOT NULL,
        created_at  timestamptz NOT NULL DEFAULT now(),
        closed_at   timestamptz,
        closed_by   text,
        reminded_at timestamptz,
        UNIQUE (incident_id, title)
    );
    CREATE INDEX ON {s}.action_items (due) WHERE closed_at IS NULL;
    """),
    (6, """
    -- The notice of each planned window (procedures 1.1): sent once, when, to whom, saying what.
    -- A scheduled window's disruptive work runs only if its notice went out notice_days ahead.
    CREATE TABLE {s}.window_notices (
        window_start timestamptz PRIMARY KEY,
        window_end   timestamptz NOT NULL,
        sent_at      timestamptz NOT NULL,
        channel      text NOT NULL,
        text         text NOT NULL,
        parts        jsonb NOT NULL DEFAULT '{{}}',
        delivered    boolean NOT NULL,
        run_id       text NOT NULL
    );
    """),
    (7, """
    -- The Change Advisory Board's decision on each planned window, from the Airflow UI.
    CREATE TABLE {s}.window_approvals (
        window_start timestamptz PRIMARY KEY,
        decision     text NOT NULL CHECK (decision IN ('approved', 'rejected', 'timed_out')),
        decided_by   text,
        decided_at   timestamptz NOT NULL,
        run_id       text NOT NULL
    );
    """),
    (8, """
    -- Emergency maintenance (procedures 1.1): a forced run's two approvals, the on-call lead's
    -- and a director's, given in the Airflow UI; the run's gates wait for both.
    CREATE TABLE {s}.emergency_approvals (
        dag_id          text NOT NULL,
        run_id          text NOT NULL,
        role            text NOT NULL CHECK (role IN ('oncall_lead', 'director')),
        decision        text NOT NULL CHECK (decision IN ('approved', 'rejected', 'timed_out')),
        decided_by      text,
        decided_at      timestamptz NOT NULL,
        reason          text NOT NULL,
        approval_run_id text NOT NULL,
        PRIMARY KEY (dag_id, run_id, role)
    );
    CREATE INDEX ON {s}.emergency_approvals (decided_at);
    """),
]


def ensure_schema(conn, schema: str) -> int:
    """Create or migrate the ledger in ``schema``; returns the version now in force."""
    ident = sql.Identifier(schema)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident))
        conn.execute(sql.SQL(
            "CREATE TABLE IF NOT EXISTS {}.schema_version ("
            " version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())").format(ident))
        done = {row[0] for row in conn.execute(sql.SQL("SELECT version FROM {}.schema_version").format(ident))}
        for version, ddl in MIGRATIONS:
            if version in done:
                continue
            conn.execute(sql.SQL(ddl).format(s=ident))
            conn.execute(sql.SQL("INSERT INTO {}.schema_version (version) VALUES (%s)").format(ident), (version,))
    return max(v for v, _ in MIGRATIONS)
