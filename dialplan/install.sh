#!/usr/bin/env bash
# OpenADS: install the Asterisk configuration from dialplan/ (docs/telephony.md, section 3).
# One installer for telecom admins and for the project's own real-PBX tests (pbx/run.sh).
#
#   dialplan/install.sh [--env FILE] [--dest DIR] [--provider NAME] [--sounds DIR]
#                       [--spool DIR] [--recordings DIR] [--dry-run]
#
# Values come from the environment, or from --env FILE (shell syntax: NAME=value lines):
#   required: DISPATCHER_201_PASSWORD DISPATCHER_202_PASSWORD DISPATCHER_203_PASSWORD ARI_PASSWORD
#             AMI_SECRET VOICEMAIL_PIN, and what the provider file names (TRUNK_HOST, TRUNK_LOGIN,
#             TRUNK_PASSWORD, TRUNK_DID or TRUNK_MATCH)
#   optional: PUBLIC_IP LOCAL_NET (behind NAT; without PUBLIC_IP the external_* lines are dropped),
#             SIP_BIND (0.0.0.0:5060), HTTP_BIND (127.0.0.1), HTTP_PORT (8088), AMI_BIND (127.0.0.1),
#             AMI_PORT (5038), RTP_START (10000), RTP_END (20000),
#             and any [globals] value of extensions.conf by its own name (OPENADS_AGI_PORT,
#             OPENADS_RING_TIMEOUT, OPENADS_RECORDINGS_DIR, OPENADS_DEFAULT_CALLERID, ...).
# --dest        Asterisk's configuration directory (default /etc/asterisk); an existing one is
#               copied once to <dest>.orig before the first install.
# --provider    zadarma | mango | generic-ip (a file of dialplan/providers/); its #include is enabled.
# --sounds      Asterisk's sounds directory (default: /usr/share/asterisk/sounds if it exists, else
#               /var/lib/asterisk/sounds): our Russian prompts are synthesised into <dir>/ru/openads/
#               with espeak-ng and sox where no recorded file is there yet (dialplan/sounds/prompts.tsv).
# --spool       Asterisk's spool directory (default /var/spool/asterisk): the voicemail box
#               openads/ becomes a link into <recordings>/voicemail/openads.
# --recordings  OPENADS_RECORDINGS_DIR (default: OPENADS_RECORDINGS_DIR, else /var/lib/openads/recordings).
# Exits non-zero, changing nothing, when a value is missing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

dest=/etc/asterisk provider= envfile= sounds= spool=/var/spool/asterisk recordings= dry=0
while [ $# -gt 0 ]; do
  case "$1" in
    --env) envfile=$2; shift 2 ;;
    --dest) dest=$2; shift 2 ;;
    --provider) provider=$2; shift 2 ;;
    --sounds) sounds=$2; shift 2 ;;
    --spool) spool=$2; shift 2 ;;
    --recordings) recordings=$2; shift 2 ;;
    --dry-run) dry=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
die() { echo "install.sh: error: $*" >&2; exit 1; }
say() { echo "install.sh: $*"; }

if [ -n "$envfile" ]; then
  [ -r "$envfile" ] || die "cannot read $envfile"
  set -a; . "$envfile"; set +a
fi
[ -n "$provider" ] || die "--provider is required: $(cd "$here/providers" && ls *.conf | sed 's/\.conf$//' | tr '\n' ' ')"
[ -f "$here/providers/$provider.conf" ] || die "no provider file dialplan/providers/$provider.conf"
command -v envsubst >/dev/null || die "envsubst not found: apt install gettext-base"

: "${SIP_BIND:=0.0.0.0:5060}" "${HTTP_BIND:=127.0.0.1}" "${HTTP_PORT:=8088}" "${AMI_BIND:=127.0.0.1}"
: "${AMI_PORT:=5038}" "${RTP_START:=10000}" "${RTP_END:=20000}" "${PUBLIC_IP:=}" "${LOCAL_NET:=}"
export SIP_BIND HTTP_BIND HTTP_PORT AMI_BIND AMI_PORT RTP_START RTP_END PUBLIC_IP LOCAL_NET
recordings=${recordings:-${OPENADS_RECORDINGS_DIR:-/var/lib/openads/recordings}}
export OPENADS_RECORDINGS_DIR=$recordings

# Files as they are, and files with ${NAME} placeholders (only these names are replaced: the
# dialplan's own ${...} stay).
plain=(extensions.conf musiconhold.conf cdr.conf cdr_manager.conf cdr_sqlite3_custom.conf indications.conf)
templated=(pjsip.conf ari.conf manager.conf voicemail.conf http.conf rtp.conf)
names=(PUBLIC_IP LOCAL_NET DISPATCHER_201_PASSWORD DISPATCHER_202_PASSWORD DISPATCHER_203_PASSWORD
       ARI_PASSWORD AMI_SECRET VOICEMAIL_PIN TRUNK_HOST TRUNK_LOGIN TRUNK_PASSWORD TRUNK_DID TRUNK_MATCH
       SIP_BIND HTTP_BIND HTTP_PORT AMI_BIND AMI_PORT RTP_START RTP_END)
optional=" PUBLIC_IP LOCAL_NET "
vars=$(printf '${%s} ' "${names[@]}")

missing=()
for f in "${templated[@]}" "providers/$provider.conf"; do
  for n in $(grep -o '\${[A-Z0-9_]\+}' "$here/$f" | tr -d '${}' | sort -u); do
    case " ${names[*]} " in *" $n "*) ;; *) die "$f: unknown placeholder \${$n}";; esac
    case "$optional" in *" $n "*) continue;; esac
    [ -n "${!n:-}" ] || missing+=("$n ($f)")
  done
done
[ ${#missing[@]} -eq 0 ] || die "no value for: ${missing[*]}"
[ "$dry" = 0 ] || { say "dry run: all values present for provider $provider"; exit 0; }

if [ -f "$dest/extensions.conf" ] && [ ! -e "$dest.orig" ] && ! grep -q '^; OpenADS dialplan' "$dest/extensions.conf"; then
  cp -a "$dest" "$dest.orig"; say "previous configuration kept in $dest.orig"
fi
mkdir -p "$dest/providers"
for f in "${plain[@]}"; do cp "$here/$f" "$dest/$f"; done
for f in "${templated[@]}"; do envsubst "$vars" < "$here/$f" > "$dest/$f"; done
envsubst "$vars" < "$here/providers/$provider.conf" > "$dest/providers/$provider.conf"
# Exactly one operator: enable its #include (the line stays after the templates it inherits from).
sed -i "s|^;#include providers/$provider.conf|#include providers/$provider.conf|" "$dest/pjsip.conf"
grep -q "^#include providers/$provider.conf" "$dest/pjsip.conf" || die "pjsip.conf has no ;#include line for $provider"
# No NAT: drop the external_* and local_net lines rather than leave them empty.
if [ -z "$PUBLIC_IP" ]; then sed -i '/^external_media_address=\|^external_signaling_address=\|^local_net=/d' "$dest/pjsip.conf"
elif [ -z "$LOCAL_NET" ]; then sed -i '/^local_net=/d' "$dest/pjsip.conf"; fi
# [globals] of extensions.conf: OPENADS_* values given in the environment replace the defaults.
for g in $(sed -n '/^\[globals\]/,/^\[/s/^\(OPENADS_[A-Z0-9_]*\)=.*/\1/p' "$dest/extensions.conf"); do
  if [ -n "${!g:-}" ]; then
    v=${!g//\\/\\\\}; v=${v//|/\\|}; v=${v//&/\\&}
    sed -i "/^\[globals\]/,/^\[/s|^$g=.*|$g=$v|" "$dest/extensions.conf"
  fi
done
left=$(grep -rn '\${[A-Z0-9_]\+}' "${templated[@]/#/$dest/}" "$dest/providers/$provider.conf" || true)
[ -z "$left" ] || die "placeholders left: $left"

# Passwords inside: only asterisk reads them (Asterisk runs as user asterisk; files are root's).
if getent group asterisk >/dev/null; then
  chown root:asterisk "$dest"/*.conf "$dest"/providers/*.conf
  chmod 640 "$dest"/*.conf "$dest"/providers/*.conf
else
  chmod 600 "${templated[@]/#/$dest/}" "$dest/providers/$provider.conf"
fi

# Recordings directory, and the voicemail box linked into it (docs/telephony.md, section 3).
owner=$(getent passwd asterisk >/dev/null && echo asterisk || id -un)
group=$(getent group openads >/dev/null && echo openads || id -gn)
mkdir -p "$recordings/voicemail/openads"
chown "$owner:$group" "$recordings" "$recordings/voicemail" "$recordings/voicemail/openads"
# 2770: Asterisk writes, OpenADS (group, setgid) reads and deletes, nobody else reads (152-ФЗ).
chmod 2770 "$recordings" "$recordings/voicemail" "$recordings/voicemail/openads"
mkdir -p "$spool/voicemail"
box=$spool/voicemail/openads
if [ -d "$box" ] && [ ! -L "$box" ]; then
  cp -a "$box/." "$recordings/voicemail/openads/" && rm -rf "$box"; say "voicemail box moved into $recordings"
fi
[ -L "$box" ] || ln -s "$recordings/voicemail/openads" "$box"

# Our prompts: synthesised only where no recorded file is there yet.
if [ -z "$sounds" ]; then
  if [ -d /usr/share/asterisk/sounds ]; then sounds=/usr/share/asterisk/sounds; else sounds=/var/lib/asterisk/sounds; fi
fi
mkdir -p "$sounds/ru/openads"
made=0
while IFS=$'\t' read -r name text; do
  case "$name" in ''|'#'*) continue;; esac
  out=$sounds/ru/openads/$name.wav
  [ -s "$out" ] && continue
  command -v espeak-ng >/dev/null && command -v sox >/dev/null || die "prompt $name missing: apt install espeak-ng sox (or record it, dialplan/sounds/README.md)"
  tmp=$(mktemp --suffix=.wav)
  espeak-ng -v ru -s 150 -w "$tmp" "$text" && sox "$tmp" -r 8000 -c 1 -b 16 "$out"
  rm -f "$tmp"; made=$((made + 1))
done < "$here/sounds/prompts.tsv"
say "installed into $dest (provider $provider), prompts in $sounds/ru/openads ($made synthesised)"
say "next: asterisk -rx 'core reload' and the checks of docs/telephony.md, section 8"
