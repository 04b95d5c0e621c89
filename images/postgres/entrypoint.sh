#!/usr/bin/env bash
# Initialises PGDATA on first start (user, password, database from the environment, like the official
# image), then runs postgres in the foreground listening on every address with scram-sha-256 auth.
set -euo pipefail

log() { printf '[postgres-entrypoint] %s\n' "$*" >&2; }

read_password() {
  if [[ -n "${POSTGRES_PASSWORD_FILE:-}" ]]; then
    cat "$POSTGRES_PASSWORD_FILE"
  else
    printf '%s' "${POSTGRES_PASSWORD:-}"
  fi
}

init_cluster() {
  local user="${POSTGRES_USER:-postgres}" database="${POSTGRES_DB:-${POSTGRES_USER:-postgres}}" password
  password="$(read_password)"
  [[ -n "$password" ]] || { log "ERROR: set POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE"; exit 1; }
  log "initialising $PGDATA (user $user, database $database)"
  initdb --username="$user" --pwfile=<(printf '%s\n' "$password") --auth-local=trust \
    --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  if [[ "$database" != "postgres" ]]; then
    # A private, socket-only server just for the CREATE DATABASE.
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
    psql -v ON_ERROR_STOP=1 --username="$user" --dbname=postgres \
      -c "CREATE DATABASE \"$database\" OWNER \"$user\"" >/dev/null
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  fi
  log "initialised"
}

if [[ "${1:-}" == "postgres" ]]; then
  mkdir -p "$PGDATA"
  chmod 700 "$PGDATA"
  [[ -s "$PGDATA/PG_VERSION" ]] || init_cluster
  shift
  exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
fi
exec "$@"
