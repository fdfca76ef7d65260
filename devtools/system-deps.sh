#!/usr/bin/env bash
# System packages the test suite exercises for real: pg_repack for the machine's
# PostgreSQL (the online de-bloat path), Prometheus with promtool and Alertmanager (the
# monitoring maintenance), the exporters the demo scrapes, and Chromium with chromedriver
# (the calendar page's browser test), docker-compose (validates the compose file).
# Installed from Debian when missing.
set -euo pipefail
need=()
for bindir in /usr/lib/postgresql/*/bin; do
  [ -x "$bindir/postgres" ] || continue
  major=$(basename "$(dirname "$bindir")")
  if [ ! -f "/usr/share/postgresql/$major/extension/pg_repack.control" ] || ! command -v pg_repack >/dev/null; then
    need+=("postgresql-$major-repack")
  fi
done
command -v promtool >/dev/null || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null || command -v alertmanager >/dev/null || need+=(prometheus-alertmanager)
# The demo's Prometheus scrapes its PostgreSQL and Redis through these.
command -v prometheus-postgres-exporter >/dev/null || need+=(prometheus-postgres-exporter)
command -v prometheus-redis-exporter >/dev/null || need+=(prometheus-redis-exporter)
# The calendar page is checked in a real browser: Debian's Chromium and its driver.
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
# docker-compose.yaml is validated by `docker-compose config` (no Docker engine needed).
command -v docker-compose >/dev/null || need+=(docker-compose)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "missing system packages: ${need[*]} (install them as root with apt-get)" >&2
  exit 1
fi
echo "installing ${need[*]}"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1 || {
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
}
