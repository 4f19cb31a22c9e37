#!/usr/bin/env bash
# Build Asterisk from ../shared/asterisk/src into a cache outside the work tree, keyed by the
# tarballs' sha256 pinned below; rebuilt only when they change. A cached build was made from sources
# that matched them, so it serves a checkout with no sources beside it (a clone in /tmp). Prints
# the install prefix on its last line.
#   OPENADS_ASTERISK_SRC   where the tarballs are (default: ../shared/asterisk/src next to the repo)
#   OPENADS_PBX_CACHE      cache root (default: ~/.cache/openads-pbx)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
src=${OPENADS_ASTERISK_SRC:-$(cd "$repo/.." && pwd)/shared/asterisk/src}
cache=${OPENADS_PBX_CACHE:-$HOME/.cache/openads-pbx}

ast_tar=asterisk-master-f0c1c1a7.tar.xz
ast_sha=e3f6bbca23a50576be8d338c4db474aa218d8c22eff14be914a744cb411061ae
pj_tar=pjproject-2.17.tar.bz2
pj_sha=04b2eb1f0f01aa0ad1945b167171843448a51aa6b7c3e806496d434f13a112b7

log() { printf 'pbx build: %s\n' "$*" >&2; }
die() { printf 'pbx build: error: %s\n' "$*" >&2; exit 1; }

key=$(printf '%s %s\n' "$ast_sha" "$pj_sha" | sha256sum | cut -c1-16)
prefix=$cache/asterisk-$key
if [ -x "$prefix/sbin/asterisk" ] && [ -f "$prefix/.built" ]; then
  log "cached: $prefix"; echo "$prefix"; exit 0
fi

for pair in "$ast_tar:$ast_sha" "$pj_tar:$pj_sha"; do
  f=${pair%%:*}; want=${pair##*:}
  [ -f "$src/$f" ] || die "$src/$f not found (set OPENADS_ASTERISK_SRC)"
  got=$(sha256sum "$src/$f" | cut -d' ' -f1)
  [ "$got" = "$want" ] || die "$f: sha256 $got, expected $want"
done

# Debian build dependencies and the sound packages (prompts, music on hold).
need=()
for p in build-essential libedit-dev libjansson-dev libxml2-dev uuid-dev libsqlite3-dev libssl-dev \
         pkg-config libcurl4-openssl-dev bzip2 patch asterisk-core-sounds-ru-wav \
         asterisk-core-sounds-en-wav asterisk-moh-opsound-wav; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "missing Debian packages: ${need[*]}"
  log "installing ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/openads-pbx-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
log "building into $prefix (about 7 minutes on 2 cores), log: $work/build.log"
mkdir -p "$work/externals"
cp "$src/$pj_tar" "$work/externals/"
tar -C "$work" -xf "$src/$ast_tar"
cd "$work"/asterisk-*/
(cd "$work/externals" && md5sum "$pj_tar") > third-party/pjproject/$pj_tar.md5
{
  ./configure --prefix="$prefix" --with-pjproject-bundled --with-externals-cache="$work/externals" \
    --without-libjwt-bundled
  make menuselect.makeopts
  menuselect/menuselect --disable-category MENUSELECT_CORE_SOUNDS --disable-category MENUSELECT_MOH \
    --disable-category MENUSELECT_EXTRA_SOUNDS --disable BUILD_NATIVE menuselect.makeopts
  make -j"$(nproc)"
  rm -rf "$prefix"
  make install
} >"$work/build.log" 2>&1 || { tail -40 "$work/build.log" >&2; die "build failed"; }
touch "$prefix/.built"
log "done: $prefix"
echo "$prefix"
