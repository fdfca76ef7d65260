"""Redis operators: thin wiring of the engines to RedisHook and the ledger."""

from __future__ import annotations

from maintenance.operator import MaintenanceOperator


class _RedisOperator(MaintenanceOperator):

    @staticmethod
    def client(cfg):
        """The provider's client, on the database the connection names. Airflow's Redis hook reads
        the database from the extra ``db`` only, so a URI that names it in its path
        (``redis://host:6379/15``) would silently get database 0: the path is honoured here, and a
        path and an extra that disagree are refused."""
        from airflow.providers.redis.hooks.redis import RedisHook

        from maintenance.errors import InputError

        hook = RedisHook(redis_conn_id=cfg.conn_id)
        conn = hook.get_connection(cfg.conn_id)
        path = str(conn.schema or "").strip("/")
        extra = conn.extra_dejson.get("db")
        if path and not path.isdigit():
            raise InputError(f"{cfg.conn_id}: the connection's path {path!r} is not a Redis database number")
        if path and extra not in (None, "") and int(extra) != int(path):
            raise InputError(f"{cfg.conn_id}: the URI names database {path} but the extra says db={extra}: "
                             "keep one")
        client = hook.get_conn()
        if path and extra in (None, ""):
            client.connection_pool.connection_kwargs["db"] = int(path)
            client.connection_pool.reset()
        return client


class RedisCacheOptimizationOperator(_RedisOperator):
    """Daily 02:00 (procedures 2.1, 3.2): memory health, TTL audit, persistence, replication,
    metrics and the pre-warm of the critical paths."""

    def run(self, run):
        from airflow.sdk.exceptions import AirflowSkipException

        from maintenance.ledger import holder_name
        from maintenance.redis.lock import CacheBusy, cache_lock

        cfg = run.policy.redis
        client = self.client(cfg)
        target = cfg.conn_id
        try:  # one actor on the cache at a time; the lock ends by itself if this worker dies
            with cache_lock(client, target, holder=holder_name(run.ledger.key), hold_s=cfg.big_keys.time_budget_s + 600,
                            wait_s=cfg.lock_wait_seconds):
                return self.optimize(run, cfg, client, target)
        except CacheBusy as exc:
            raise AirflowSkipException(str(exc)) from exc

    def optimize(self, run, cfg, client, target) -> dict:
        import time

        from maintenance.notify.pages import page_once
        from maintenance.redis import engine

        ledger, dry_run = run.ledger, run.dry_run
        summary: dict = {}
        health = engine.memory_health(client, cfg)
        summary["memory"] = {"used_mb": health.used / 2**20, "maxmemory_mb": health.maxmemory / 2**20,
                             "fragmentation": health.fragmentation, "waste_mb": health.waste_mb,
                             "actions": health.actions, "proposals": health.proposals}
        for proposal in health.proposals:
            ledger.record_finding("redis_fragmentation", target, "warning", proposal, summary["memory"])
        if "memory_purge" in health.actions:
            with run.step("redis", target, "memory_purge", summary["memory"]) as act:
                if not dry_run:
                    act.plan = act.plan | {"done": engine.purge_memory(client, cfg.allow_active_defrag)}
        if "relieve_memory" in health.actions:
            stale = engine.stale_disposable_keys(client, cfg.disposable, cfg.big_keys.batch, cfg.max_relief_deletes)
            with run.step("redis", target, "delete_stale_disposable",
                               {"candidates": len(stale), "used_fraction": health.used_fraction}) as act:
                act.rows_affected = 0 if dry_run else engine.unlink(client, stale, cfg.big_keys.batch)
            summary["relief"] = {"stale_disposable": len(stale), "deleted": act.rows_affected}

        audit = engine.sample_ttls(client, cfg.ttl_audit.sample)
        summary["ttl_audit"] = {"before": audit}
        if engine.ttl_audit_due(audit, cfg):
            applied = {}
            for rule in cfg.ttl_audit.default_ttls:
                keys = engine.keys_missing_ttl(client, rule.pattern, cfg.big_keys.batch,
                                               cfg.ttl_audit.max_keys_per_run)
                with ledger.action("redis", f"{target}:{rule.pattern}", "apply_default_ttl",
                                   {"ttl_seconds": rule.ttl_seconds, "keys": len(keys)}) as act:
                    act.rows_affected = 0 if dry_run else engine.apply_ttl(client, keys, rule.ttl_seconds,
                                                                           cfg.big_keys.batch)
                applied[rule.pattern] = {"without_ttl": len(keys), "applied": act.rows_affected}
            summary["ttl_audit"]["applied"] = applied
            summary["ttl_audit"]["after"] = engine.sample_ttls(client, cfg.ttl_audit.sample)

        findings = engine.persistence_and_replication(client, cfg, time.time())
        for finding in findings:
            ledger.record_finding(finding["check"], target, finding["severity"], finding["message"],
                                  finding["evidence"])
        summary["pages"] = page_once(ledger, run.policy, scope=f"redis:{target}", context=run.context,
                                     title=f"Redis persistence/replication failure on {target}",
                                     problems=engine.pages_for(findings))
        summary["findings"] = findings

        values = engine.metrics(client)
        ledger.record_metrics("redis", target, values)
        summary["metrics"] = values
        if cfg.prewarm_base_url:
            summary["prewarm"] = engine.prewarm(cfg.prewarm_base_url, cfg.prewarm_paths, cfg.prewarm_timeout_s)
        return summary

    def describe(self, summary):
        audit = summary["ttl_audit"]["before"]
        parts = [f"{audit['no_expiry_fraction']:.0%} of {audit['sampled']} sampled keys without TTL"]
        if "applied" in summary["ttl_audit"]:
            after = summary["ttl_audit"]["after"]["no_expiry_fraction"]
            parts.append(f"default TTLs applied, now {after:.0%}")
        if summary["findings"]:
            parts.append(f"{len(summary['findings'])} finding(s)")
        return "; ".join(parts)


class RedisBigKeysOperator(_RedisOperator):
    """Weekly: every key's memory by SCAN + MEMORY USAGE; top keys overall, per type and per
    namespace, with per-namespace history in the ledger. Resumes from a saved cursor when the
    pass outlives its time budget."""

    def run(self, run):
        import json

        from airflow.sdk import Variable

        from maintenance.redis import engine

        cfg = run.policy.redis
        state_key = f"redis_bigkeys_resume_{cfg.conn_id}"
        saved = Variable.get(state_key, default=None)
        resume = json.loads(saved) if saved else None
        result = engine.big_keys(self.client(cfg), cfg.big_keys, resume=resume)
        if result.complete:
            if saved:
                Variable.delete(state_key)
            for prefix, totals in list(result.namespaces.items())[:50]:
                run.ledger.record_metrics("redis_namespace", prefix,
                                          {"bytes": totals["bytes"], "keys": totals["count"]})
        else:
            Variable.set(state_key, json.dumps(result.as_dict()))
            self.log.info("Time budget reached after %s keys; the next run resumes at cursor %s",
                          result.scanned, result.cursor)
        return result.as_dict() | {"resumed": resume is not None}

    def describe(self, summary):
        state = "complete" if summary["complete"] else f"paused at cursor {summary['cursor']}"
        biggest = summary["top"][0] if summary["top"] else None
        return f"{summary['scanned']} keys measured ({state})" + (
            f"; biggest {biggest['key']} {biggest['bytes'] / 2**20:.1f} MB" if biggest else "")
