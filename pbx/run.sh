#!/usr/bin/env bash
# The real Asterisk for OpenADS's own tests: built by pbx/build.sh, configured with the project's
# dialplan/ through dialplan/install.sh (the admins' installer) with test values, on loopback only
# and on ports of its own.
#
#   pbx/run.sh start | stop | status | cli "<asterisk command>" | env
#
# Addresses: Asterisk 127.0.0.1 (SIP OPENADS_PBX_SIP_PORT, ARI OPENADS_PBX_ARI_PORT, AMI
# OPENADS_PBX_AMI_PORT); the operator's side of the trunk is 127.0.0.2 (OPENADS_PBX_TRUNK_PORT),
# where the tests' "operator" SIP phone listens; residents call from 127.0.0.2 as well.
# `env` prints the settings for openads processes and the tests (sourced by tests/pbx).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
home=${OPENADS_PBX_HOME:-$repo/var/pbx}
sip_port=${OPENADS_PBX_SIP_PORT:-25060}
ari_port=${OPENADS_PBX_ARI_PORT:-28088}
ami_port=${OPENADS_PBX_AMI_PORT:-25038}
agi_port=${OPENADS_PBX_AGI_PORT:-24573}
trunk_port=${OPENADS_PBX_TRUNK_PORT:-25070}
rtp_start=${OPENADS_PBX_RTP_START:-30000}
rtp_end=${OPENADS_PBX_RTP_END:-31998}
ring_timeout=${OPENADS_PBX_RING_TIMEOUT:-20}
did=${OPENADS_PBX_DID:-74950000000}
conf=$home/etc/asterisk/asterisk.conf

die() { echo "pbx: error: $*" >&2; exit 1; }
log() { echo "pbx: $*" >&2; }

prefix_of() { "$here/build.sh" | tail -n 1; }
cli() { "$(cat "$home/prefix")/sbin/asterisk" -C "$conf" -rx "$1"; }
running() { [ -f "$home/run/asterisk.pid" ] && kill -0 "$(cat "$home/run/asterisk.pid")" 2>/dev/null; }

print_env() {
  cat <<ENV
OPENADS_PBX_HOME=$home
OPENADS_PBX_PREFIX=$(cat "$home/prefix" 2>/dev/null || true)
OPENADS_PBX_CONF=$conf
OPENADS_PBX_SIP=127.0.0.1:$sip_port
OPENADS_PBX_TRUNK=127.0.0.2:$trunk_port
OPENADS_PBX_DID=$did
OPENADS_PBX_RING_TIMEOUT=$ring_timeout
DISPATCHER_201_PASSWORD=test-201-secret
DISPATCHER_202_PASSWORD=test-202-secret
DISPATCHER_203_PASSWORD=test-203-secret
ARI_URL=http://127.0.0.1:$ari_port
ARI_USER=openads
ARI_PASSWORD=test-ari-secret
ARI_APP=openads
AMI_HOST=127.0.0.1
AMI_PORT=$ami_port
AMI_USER=openads
AMI_SECRET=test-ami-secret
AGI_HOST=127.0.0.1
AGI_PORT=$agi_port
OPENADS_RECORDINGS_DIR=$home/recordings
ASTERISK_CDR_URL=sqlite:///$home/log/master.db
ENV
}

port_busy() {  # port_busy tcp|udp PORT
  local flag=-ltnH; [ "$1" = udp ] && flag=-lunH
  ss $flag "sport = :$2" | grep -q .
}

start() {
  if running; then log "already running (pid $(cat "$home/run/asterisk.pid"))"; return 0; fi
  command -v ss >/dev/null || die "ss not found (apt install iproute2)"
  port_busy tcp "$ari_port" && die "ARI port 127.0.0.1:$ari_port is busy (another Asterisk or a demo?): stop it or set OPENADS_PBX_ARI_PORT"
  port_busy tcp "$ami_port" && die "AMI port $ami_port is busy: set OPENADS_PBX_AMI_PORT"
  port_busy udp "$sip_port" && die "SIP port $sip_port/udp is busy: set OPENADS_PBX_SIP_PORT"
  local prefix; prefix=$(prefix_of)
  mkdir -p "$home"/{etc/asterisk,data/sounds,run,log,db,recordings} "$home"/spool/{recording,monitor,tmp,outgoing,voicemail,meetme}
  echo "$prefix" > "$home/prefix"
  local lib=$prefix/var/lib/asterisk
  for d in documentation rest-api static-http phoneprov keys firmware; do
    [ -e "$lib/$d" ] && ln -sfn "$lib/$d" "$home/data/$d"
  done
  ln -sfn /usr/share/asterisk/moh "$home/data/moh"
  ln -sfn /usr/share/asterisk/sounds/en "$home/data/sounds/en"
  [ -d "$home/data/sounds/ru" ] || cp -as "$(readlink -f /usr/share/asterisk/sounds/ru)/." "$home/data/sounds/ru/"
  cat > "$conf" <<CONF
; OpenADS test PBX (pbx/run.sh): everything under $home
[directories]
astetcdir => $home/etc/asterisk
astmoddir => $prefix/lib/asterisk/modules
astvarlibdir => $home/data
astdbdir => $home/db
astkeydir => $home/data
astdatadir => $home/data
astagidir => $home/data/agi-bin
astspooldir => $home/spool
astrundir => $home/run
astlogdir => $home/log
astsbindir => $prefix/sbin

[options]
defaultlanguage = ru
documentation_language = en_US
CONF
  cat > "$home/etc/asterisk/modules.conf" <<'CONF'
; OpenADS test PBX: everything built, except channel drivers and services that would listen on
; ports of their own.
[modules]
autoload = yes
noload => chan_iax2.so
noload => chan_mgcp.so
noload => chan_skinny.so
noload => chan_unistim.so
noload => pbx_dundi.so
noload => res_hep.so
noload => res_hep_pjsip.so
noload => res_hep_rtcp.so
noload => res_pjsip_phoneprov_provider.so
noload => res_phoneprov.so
noload => res_smdi.so
noload => cdr_custom.so
noload => cdr_csv.so
noload => cel_custom.so
noload => res_prometheus.so
CONF
  cat > "$home/etc/asterisk/logger.conf" <<'CONF'
[general]
dateformat = %F %T.%3q
[logfiles]
messages.log => notice,warning,error
full.log => notice,warning,error,verbose(3),dtmf
CONF
  cat > "$home/telephony.env" <<ENV
DISPATCHER_201_PASSWORD=test-201-secret
DISPATCHER_202_PASSWORD=test-202-secret
DISPATCHER_203_PASSWORD=test-203-secret
ARI_PASSWORD=test-ari-secret
AMI_SECRET=test-ami-secret
VOICEMAIL_PIN=4242
TRUNK_HOST=127.0.0.2:$trunk_port
TRUNK_MATCH=127.0.0.2
SIP_BIND=127.0.0.1:$sip_port
HTTP_BIND=127.0.0.1
HTTP_PORT=$ari_port
AMI_BIND=127.0.0.1
AMI_PORT=$ami_port
RTP_START=$rtp_start
RTP_END=$rtp_end
OPENADS_AGI_PORT=$agi_port
OPENADS_RING_TIMEOUT=$ring_timeout
OPENADS_DEFAULT_CALLERID=$did
ENV
  "$repo/dialplan/install.sh" --env "$home/telephony.env" --dest "$home/etc/asterisk" --provider generic-ip \
    --sounds "$home/data/sounds" --spool "$home/spool" --recordings "$home/recordings" >&2
  rm -f "$home/log/master.db"
  ( cd "$home" && exec setsid "$prefix/sbin/asterisk" -f -C "$conf" > "$home/log/console.log" 2>&1 ) &
  echo $! > "$home/run/asterisk.pid"
  for _ in $(seq 1 100); do
    if "$prefix/sbin/asterisk" -C "$conf" -rx "core waitfullybooted" >/dev/null 2>&1; then break; fi
    running || { tail -20 "$home/log/console.log" >&2; die "Asterisk exited"; }
    sleep 0.2
  done
  for _ in $(seq 1 50); do
    curl -fsS -u openads:test-ari-secret "http://127.0.0.1:$ari_port/ari/asterisk/info" >/dev/null 2>&1 && {
      log "running: pid $(cat "$home/run/asterisk.pid"), SIP 127.0.0.1:$sip_port, ARI http://127.0.0.1:$ari_port, AMI $ami_port, logs $home/log"
      return 0; }
    sleep 0.2
  done
  die "ARI does not answer on 127.0.0.1:$ari_port (see $home/log/messages.log)"
}

stop() {
  running || { log "not running"; return 0; }
  local pid; pid=$(cat "$home/run/asterisk.pid")
  cli "core stop now" >/dev/null 2>&1 || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$home/run/asterisk.pid"
  log "stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) if running; then cli "core show uptime"; else echo "not running"; exit 3; fi ;;
  cli) shift; cli "$*" ;;
  env) print_env ;;
  build) prefix_of ;;
  *) echo "usage: pbx/run.sh start|stop|status|cli <command>|env|build" >&2; exit 2 ;;
esac
