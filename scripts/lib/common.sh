# Shared helpers for scripts/*. Sourced, not run.

step() { printf '\n==> %s\n' "$*"; }

# need_apt COMMAND PACKAGE: installs PACKAGE with apt when COMMAND is missing.
_apt_updated=
need_apt() {
  command -v "$1" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "error: '$1' is missing; install the Debian package '$2' (apt-get install $2)" >&2
    return 1
  fi
  if [ -z "$_apt_updated" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    _apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null
}
