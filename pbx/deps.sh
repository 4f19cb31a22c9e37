#!/usr/bin/env bash
# Debian packages the real-PBX tests need: SIP phones (baresip), SIPp, speech and audio tools.
set -euo pipefail
need=()
for p in baresip-core sip-tester espeak-ng sox iproute2 curl; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
[ ${#need[@]} -eq 0 ] && exit 0
[ "$(id -u)" = 0 ] || { echo "pbx/deps.sh: missing Debian packages: ${need[*]} (run as root)" >&2; exit 1; }
echo "pbx/deps.sh: installing ${need[*]}" >&2
apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
