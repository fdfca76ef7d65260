-- The platform tables the procedures name, shaped like Pathfinity's, for the demo and tests.
CREATE TABLE IF NOT EXISTS learning_sessions (
    id          bigserial PRIMARY KEY,
    student_id  bigint      NOT NULL,
    career_id   integer     NOT NULL,
    created_at  timestamptz NOT NULL,
    ended_at    timestamptz,
    duration_s  integer,
    payload     jsonb
);
CREATE INDEX IF NOT EXISTS learning_sessions_created_at_idx ON learning_sessions (created_at);
CREATE INDEX IF NOT EXISTS learning_sessions_student_idx ON learning_sessions (student_id);

CREATE TABLE IF NOT EXISTS pathiq_metrics (
    id          bigserial PRIMARY KEY,
    student_id  bigint      NOT NULL,
    metric      text        NOT NULL,
    value       double precision NOT NULL,
    "timestamp" timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS pathiq_metrics_timestamp_idx ON pathiq_metrics ("timestamp");

CREATE TABLE IF NOT EXISTS career_selections (
    id          bigserial PRIMARY KEY,
    student_id  bigint      NOT NULL,
    career_id   integer     NOT NULL,
    status      text        NOT NULL DEFAULT 'active',
    selected_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS career_selections_student_idx ON career_selections (student_id);
CREATE INDEX IF NOT EXISTS career_selections_status_idx ON career_selections (status);

CREATE MATERIALIZED VIEW IF NOT EXISTS career_popularity AS
    SELECT career_id, count(*) AS selections FROM career_selections GROUP BY career_id;
CREATE UNIQUE INDEX IF NOT EXISTS career_popularity_career_idx ON career_popularity (career_id);
