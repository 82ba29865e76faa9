#!/usr/bin/env bash
# Build (or reuse) the pinned real parts the suite runs against, and install the Debian ones.
#
#   tools/build.sh            everything
#   tools/build.sh spire opa  only those
#
# Go tools are pinned in tools/<family>/go.mod (+ go.sum) and built into
#   $X0_TOOLS_CACHE/<family>-<version>/   (default ~/.cache/x0tta6bl4/tools)
# then linked into $X0_TOOLS_CACHE/bin. A second run finds the cache and takes seconds.
# Debian packages come from tools/debian-packages.txt; each line pins a version prefix that the
# installed package must match. A failed build or install stops here with the reason.
set -Eeuo pipefail
# Any command that fails ends the script, and says where and what: never a bare "Error 1".
trap 'rc=$?; printf "[tools] FAILED (exit %s) at tools/build.sh line %s: %s\n" "$rc" "$LINENO" "$BASH_COMMAND" >&2' ERR

here=$(cd "$(dirname "$0")" && pwd)
cache=${X0_TOOLS_CACHE:-$HOME/.cache/x0tta6bl4/tools}
mkdir -p "$cache/bin"

log() { printf '[tools %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# family -> space-separated Go packages to build
declare -A packages=(
  [spire]="github.com/spiffe/spire/cmd/spire-server github.com/spiffe/spire/cmd/spire-agent"
  [opa]="github.com/open-policy-agent/opa"
  [buf]="github.com/bufbuild/buf/cmd/buf"
  [grpcurl]="github.com/fullstorydev/grpcurl/cmd/grpcurl"
)
# family -> the module whose version keys the cache
declare -A modules=(
  [spire]="github.com/spiffe/spire"
  [opa]="github.com/open-policy-agent/opa"
  [buf]="github.com/bufbuild/buf"
  [grpcurl]="github.com/fullstorydev/grpcurl"
)

module_version() { # family
  local fam=$1 mod=${modules[$1]}
  awk -v m="$mod" '$1 == m && $2 ~ /^v/ { print $2; exit } $1 == "require" && $2 == m { print $3; exit }' \
    "$here/$fam/go.mod"
}

build_go() { # family
  local fam=$1 version dest pkgs=() p
  version=$(module_version "$fam")
  [ -n "$version" ] || { log "cannot find the pinned version of ${modules[$fam]} in tools/$fam/go.mod"; exit 1; }
  dest="$cache/$fam-$version"
  read -r -a pkgs <<<"${packages[$fam]}"
  local missing=0
  for p in "${pkgs[@]}"; do [ -x "$dest/$(basename "$p")" ] || missing=1; done
  if [ "$missing" = 1 ]; then
    command -v go >/dev/null || { log "go is not installed; it is needed to build $fam"; exit 1; }
    log "building $fam $version (first time only; a few minutes on 2 cores) ..."
    local started=$SECONDS tmp
    tmp=$(mktemp -d "$cache/.build-$fam.XXXX")
    # -v prints each package as it compiles: that is the progress.
    (cd "$here/$fam" && GOFLAGS=-mod=mod go build -v -o "$tmp/" "${pkgs[@]}" 2>&1 \
      | awk -v f="$fam" '{ n++; if (n % 50 == 0) printf "[tools] %s: %d packages compiled\n", f, n > "/dev/stderr" }') \
      || { log "building $fam failed"; rm -rf "$tmp"; exit 1; }
    for p in "${pkgs[@]}"; do
      [ -x "$tmp/$(basename "$p")" ] || { log "building $fam produced no $(basename "$p")"; rm -rf "$tmp"; exit 1; }
    done
    rm -rf "$dest"; mv "$tmp" "$dest"
    log "built $fam $version in $((SECONDS - started)) s"
  else
    log "$fam $version: cached"
  fi
  for p in "${pkgs[@]}"; do ln -sfn "$dest/$(basename "$p")" "$cache/bin/$(basename "$p")"; done
}

# The installed version of a Debian package, or nothing when it is not installed. dpkg-query
# exits 1 for a package it does not know: that is an answer here, not an error.
installed_version() { # package
  local status
  status=$(dpkg-query -W -f='${Status} ${Version}' "$1" 2>/dev/null) || return 0
  awk '$3 == "installed" { print $4 }' <<<"$status"
}

# tools/debian-packages.txt, or the list named by X0_DEBIAN_PACKAGES (the regression test
# points it at a list of its own).
debian_list=${X0_DEBIAN_PACKAGES:-$here/debian-packages.txt}

install_debian() {
  local want=() pkg prefix have
  [ -r "$debian_list" ] || { log "cannot read the Debian package list $debian_list"; exit 1; }
  while read -r pkg prefix; do
    { [ -z "$pkg" ] || [ "${pkg:0:1}" = "#" ]; } && continue
    have=$(installed_version "$pkg")
    if [ -z "$have" ]; then want+=("$pkg"); fi
  done <"$debian_list"
  if [ ${#want[@]} -gt 0 ]; then
    log "installing Debian packages: ${want[*]}"
    local sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    local lists=""
    [ -d /var/lib/apt/lists ] && lists=$(find /var/lib/apt/lists -maxdepth 1 -type f -name '*_Packages*' -print -quit)
    if [ -z "$lists" ] || [ -n "${X0_APT_UPDATE:-}" ]; then
      log "apt-get update (package lists are missing, or X0_APT_UPDATE is set)"
      $sudo apt-get update -q || { log "apt-get update failed: the Debian mirror cannot be reached?"; exit 1; }
    fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${want[@]}" \
      || { $sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${want[@]}"; } \
      || { log "apt-get install ${want[*]} failed"; exit 1; }
    log "installed Debian packages: ${want[*]}"
  fi
  while read -r pkg prefix; do
    { [ -z "$pkg" ] || [ "${pkg:0:1}" = "#" ]; } && continue
    have=$(installed_version "$pkg")
    case "$have" in
      "") log "$pkg is still not installed after apt-get install"; exit 1 ;;
      "$prefix"*) ;;
      *) log "$pkg is $have but $debian_list pins $prefix*"; exit 1 ;;
    esac
  done <"$debian_list"
  log "Debian packages: present"
}

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(debian spire opa buf grpcurl)
for t in "${targets[@]}"; do
  case "$t" in
    debian) install_debian ;;
    spire|opa|buf|grpcurl) build_go "$t" ;;
    *) log "unknown tool '$t' (known: debian spire opa buf grpcurl)"; exit 2 ;;
  esac
done
log "tools ready in $cache/bin"
