-- Demo data: a year of activity, some of it older than six months, with bloat made on
-- purpose (updates and deletes) so the maintenance DAGs have visible work to do.
-- :scale is the number of learning sessions (psql variable).
TRUNCATE learning_sessions, pathiq_metrics, career_selections RESTART IDENTITY;

INSERT INTO learning_sessions (student_id, career_id, created_at, ended_at, duration_s, payload)
SELECT (random() * 20000)::bigint, 1 + (g % 40),
       ts, ts + make_interval(secs => 300 + g % 3000), 300 + g % 3000,
       jsonb_build_object('device', (ARRAY['web','ios','android'])[1 + g % 3], 'lesson', g % 500)
FROM (SELECT g, now() - random() * interval '365 days' AS ts FROM generate_series(1, :scale) g) t;

-- Students in a session right now: what the gate's load probe counts.
INSERT INTO learning_sessions (student_id, career_id, created_at, ended_at)
SELECT g, 1 + g % 40, now() - (g % 20) * interval '1 minute', NULL FROM generate_series(1, 120) g;

INSERT INTO pathiq_metrics (student_id, metric, value, "timestamp")
SELECT (random() * 20000)::bigint, (ARRAY['engagement','mastery','pace'])[1 + g % 3], random(),
       now() - (random() * interval '365 days')
FROM generate_series(1, :scale) g;

INSERT INTO career_selections (student_id, career_id, selected_at)
SELECT g, 1 + g % 40, now() - (random() * interval '365 days') FROM generate_series(1, :scale / 4) g;

-- Churn: career_selections is rewritten a lot, which leaves dead tuples and bloat.
UPDATE career_selections SET status = 'revised' WHERE id % 2 = 0;
UPDATE career_selections SET status = 'active' WHERE id % 2 = 0;
DELETE FROM career_selections WHERE id % 5 = 0;
ANALYZE;
