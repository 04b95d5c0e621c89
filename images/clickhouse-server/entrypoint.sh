#!/usr/bin/env bash
# Starts clickhouse-server in the foreground. CLICKHOUSE_PASSWORD (or CLICKHOUSE_PASSWORD_FILE) sets the
# `default` user's password through users.d, so the password never lives in the image.
set -euo pipefail

readonly USERS_D=/etc/clickhouse-server/users.d

password="${CLICKHOUSE_PASSWORD:-}"
if [[ -n "${CLICKHOUSE_PASSWORD_FILE:-}" ]]; then
  password="$(<"$CLICKHOUSE_PASSWORD_FILE")"
fi
if [[ -n "$password" ]]; then
  hash="$(printf '%s' "$password" | sha256sum | cut -d' ' -f1)"
  cat >"$USERS_D/default-password.xml" <<XML
<?xml version="1.0"?>
<yandex><users><default>
  <password remove="remove"/>
  <password_sha256_hex>$hash</password_sha256_hex>
</default></users></yandex>
XML
fi

if [[ $# -eq 0 || "$1" == -* ]]; then
  exec clickhouse-server --config-file=/etc/clickhouse-server/config.xml "$@"
fi
exec "$@"
