#!/usr/bin/env bash
# OpenADS: one dump of the PostgreSQL database (docs/install.md, «Резервные копии»).
#
#   deploy/backup.sh [DIR]        (openads-backup.service runs it every night as the services' user)
#
# DATABASE_URL (postgresql://...) comes from the environment (the services' EnvironmentFile).
# Writes DIR/openads-YYYYmmddTHHMMSSZ.dump (pg_dump custom format, default DIR /var/backups/openads),
# checks that pg_restore can read it, then deletes dumps older than OPENADS_BACKUP_KEEP_DAYS (14).
# A failed dump leaves no file behind and exits non-zero (the unit fails, the journal says why).
set -euo pipefail
dir=${1:-/var/backups/openads}
keep=${OPENADS_BACKUP_KEEP_DAYS:-14}
die() { echo "backup.sh: error: $*" >&2; exit 1; }

url=${DATABASE_URL:-}
case "$url" in
  postgresql+psycopg://*) url="postgresql://${url#postgresql+psycopg://}" ;;
  postgresql://*|postgres://*) ;;
  "") die "DATABASE_URL is not set (EnvironmentFile of the services, docs/install.md)" ;;
  *) die "DATABASE_URL is not PostgreSQL: this script dumps PostgreSQL only" ;;
esac
case "$keep" in ''|*[!0-9]*) die "OPENADS_BACKUP_KEEP_DAYS must be a number of days, got '$keep'" ;; esac
[ -d "$dir" ] && [ -w "$dir" ] || die "$dir is not a writable directory (install -d -o openads -g openads -m 0750 $dir)"

umask 077  # the dump holds residents' personal data (152-ФЗ)
name="openads-$(date -u +%Y%m%dT%H%M%SZ).dump"
partial="$dir/.$name.partial"
trap 'rm -f "$partial"' EXIT
pg_dump --format=custom --compress=6 --no-password --file="$partial" --dbname="$url"
pg_restore --list "$partial" >/dev/null || die "pg_restore cannot read the new dump"
mv "$partial" "$dir/$name"
trap - EXIT
echo "backup.sh: $dir/$name ($(du -h "$dir/$name" | cut -f1))"
find "$dir" -maxdepth 1 -name 'openads-*.dump' -type f -mtime "+$keep" -print -delete | sed 's/^/backup.sh: removed /'
