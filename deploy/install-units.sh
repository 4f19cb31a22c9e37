#!/usr/bin/env bash
# OpenADS: install the systemd units of deploy/systemd/ and the `openads` command for the
# administrator (docs/install.md, «Службы systemd»). `make install-units` runs it with the defaults.
#
#   deploy/install-units.sh [--venv DIR] [--user NAME] [--group NAME] [--env-file FILE]
#                           [--backup-dir DIR] [--dest DIR] [--bin-dir DIR] [--no-reload]
#
# --venv        the virtual environment with OpenADS installed (default: <this repository>/.venv)
# --user        the services' system user (default openads); --group its group (default: the same)
# --env-file    the services' settings, a copy of .env.example (default /etc/openads/openads.env).
#               It must exist and set OPENADS_VAR_DIR and OPENADS_RECORDINGS_DIR (absolute paths):
#               they, with OPENADS_PROMPTS_DIR, ARI_LOCK_FILE and OPENADS_OUTBOX_JOURNAL when they lie
#               outside OPENADS_VAR_DIR, are the only paths the services may write (ReadWritePaths=).
# --backup-dir  where openads-backup.service writes the dumps (default /var/backups/openads)
# --dest        where the units go (default /etc/systemd/system)
# --bin-dir     where the `openads` command goes (default /usr/local/bin): it loads --env-file and,
#               run by root, runs <venv>/bin/openads as --user
# --no-reload   do not run `systemctl daemon-reload` (it runs only for /etc/systemd/system anyway)
# Run it again after changing any of these values or the paths in the settings; it enables and
# starts nothing (docs/install.md says which units to enable).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)

venv=$src/.venv user=openads group= env_file=/etc/openads/openads.env backup_dir=/var/backups/openads
dest=/etc/systemd/system bin_dir=/usr/local/bin reload=1
while [ $# -gt 0 ]; do
  case "$1" in
    --venv) venv=$2; shift 2 ;;
    --user) user=$2; shift 2 ;;
    --group) group=$2; shift 2 ;;
    --env-file) env_file=$2; shift 2 ;;
    --backup-dir) backup_dir=$2; shift 2 ;;
    --dest) dest=$2; shift 2 ;;
    --bin-dir) bin_dir=$2; shift 2 ;;
    --no-reload) reload=0; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "install-units.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
group=${group:-$user}
die() { echo "install-units.sh: error: $*" >&2; exit 1; }
say() { echo "install-units.sh: $*"; }

# Paths go into unit files: absolute, and nothing systemd or sed would read as syntax.
path_ok() {
  case "$2" in
    /*) ;;
    *) die "$1 must be an absolute path, got '$2'" ;;
  esac
  case "$2" in
    *[[:space:]]*|*%*|*'|'*|*'\'*|*'"'*|*"'"*) die "$1 must not contain spaces, %, |, \\ or quotes: '$2'" ;;
  esac
}
for pair in "--venv:$venv" "--env-file:$env_file" "--backup-dir:$backup_dir" "--dest:$dest" "--bin-dir:$bin_dir" \
            "the repository:$src"; do
  path_ok "${pair%%:*}" "${pair#*:}"
done
case "$user$group" in *[!A-Za-z0-9_.-]*|'') die "--user and --group must be plain names" ;; esac
getent passwd "$user" >/dev/null || die "no user '$user' (useradd --system ..., docs/install.md)"
getent group "$group" >/dev/null || die "no group '$group'"
[ -x "$venv/bin/openads" ] || die "$venv/bin/openads not found: install OpenADS into $venv first (docs/install.md)"
[ -r "$env_file" ] || die "cannot read $env_file: make it from .env.example first (docs/install.md)"

# The data paths, as the services will see them: from the file alone (systemd gives them nothing else).
settings=$(unset OPENADS_VAR_DIR OPENADS_RECORDINGS_DIR OPENADS_PROMPTS_DIR ARI_LOCK_FILE OPENADS_OUTBOX_JOURNAL
           set -a; . "$env_file" >/dev/null; set +a
           printf '%s\n' "${OPENADS_VAR_DIR:-}" "${OPENADS_RECORDINGS_DIR:-}" "${OPENADS_PROMPTS_DIR:-}" \
                         "${ARI_LOCK_FILE:-}" "${OPENADS_OUTBOX_JOURNAL:-}" end)
{ read -r var_dir; read -r recordings_dir; read -r prompts_dir; read -r lock_file; read -r journal; } <<<"$settings"
[ -n "$var_dir" ] || die "$env_file does not set OPENADS_VAR_DIR (e.g. /var/lib/openads): the services cannot write into the code directory"
[ -n "$recordings_dir" ] || die "$env_file does not set OPENADS_RECORDINGS_DIR (e.g. /var/lib/openads/recordings)"
path_ok OPENADS_VAR_DIR "$var_dir"
var_dir=${var_dir%/}
rw=$var_dir
add_rw() {  # a directory the services write, unless OPENADS_VAR_DIR already holds it
  [ -n "$2" ] || return 0
  path_ok "$1" "$2"
  local dir=${2%/}
  case "$dir/" in "$var_dir"/*) return 0 ;; esac
  case " $rw " in *" $dir "*) return 0 ;; esac
  rw="$rw $dir"
}
add_rw OPENADS_RECORDINGS_DIR "$recordings_dir"
add_rw OPENADS_PROMPTS_DIR "$prompts_dir"
[ -z "$lock_file" ] || add_rw ARI_LOCK_FILE "$(dirname "$lock_file")"
[ -z "$journal" ] || add_rw OPENADS_OUTBOX_JOURNAL "$(dirname "$journal")"

render() {  # template → file: the @NAME@ placeholders, nothing else
  sed -e "s|@SRC@|$src|g" -e "s|@VENV@|$venv|g" -e "s|@USER@|$user|g" -e "s|@GROUP@|$group|g" \
      -e "s|@ENV_FILE@|$env_file|g" -e "s|@RW_PATHS@|$rw|g" -e "s|@BACKUP_DIR@|$backup_dir|g" "$1" >"$2.tmp"
  if grep -n '@[A-Z_]*@' "$2.tmp" >&2; then rm -f "$2.tmp"; die "$1: unknown placeholder left"; fi
  chmod "$3" "$2.tmp"
  mv "$2.tmp" "$2"
}

mkdir -p "$dest" "$bin_dir"
units=()
for template in "$src"/deploy/systemd/*; do
  name=$(basename "$template")
  render "$template" "$dest/$name" 0644
  units+=("$name")
done
render "$src/deploy/openads.in" "$bin_dir/openads" 0755
say "installed into $dest: ${units[*]}"
say "installed $bin_dir/openads ($venv/bin/openads as $user, settings from $env_file)"
say "the services may write: $rw; backups: $backup_dir"

if [ "$reload" = 1 ] && [ "$dest" = /etc/systemd/system ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  say "systemctl daemon-reload done"
fi
