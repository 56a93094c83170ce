# shellcheck shell=bash
# Shared helpers for scripts/*. Sourced, not run.

step() { printf '\n==> %s\n' "$*"; }

GENE_API_NEEDS_FILE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/needs"

# needs_list STEP KIND: the names declared for STEP of KIND (apt, pip, build)
# in scripts/lib/needs, one a line.
needs_list() {
  awk -v step="$1" -v kind="$2" '$1 == step && $2 == kind { print $3 }' "$GENE_API_NEEDS_FILE"
}

# needs STEP: installs the Debian packages scripts/lib/needs declares for
# STEP that are not installed yet. One dpkg-query when all are there.
needs() {
  local want=() missing=() installed p
  mapfile -t want < <(needs_list "$1" apt)
  [ ${#want[@]} -gt 0 ] || return 0
  # dpkg-query exits 1 when it knows some of the names not at all.
  installed=$({ dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' "${want[@]}" 2>/dev/null || true; } |
    awk '$1 == "ii" { print $2 }')
  for p in "${want[@]}"; do
    grep -qx -- "$p" <<<"$installed" || missing+=("$p")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  if [ "$(id -u)" != 0 ]; then
    echo "error: step '$1' needs the Debian packages ${missing[*]}: apt-get install ${missing[*]}" >&2
    return 1
  fi
  step "installing for step '$1': ${missing[*]} (scripts/lib/needs)"
  local log="${TMPDIR:-/tmp}/gene-api-apt.$$.log"
  if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    rm -f "$log"
    echo "error: apt-get install ${missing[*]} failed (step '$1')" >&2
    return 1
  fi
  rm -f "$log"
}

# needs_venv STEP DIR: a virtualenv in DIR with exactly the PyPI tools
# scripts/lib/needs declares for STEP; reused while that list is unchanged.
needs_venv() {
  local want stamp="$2/.gene-api-requirements" reqs
  mapfile -t reqs < <(needs_list "$1" pip)
  want=$(printf '%s\n' "${reqs[@]}")
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  step "installing for step '$1' into $2: ${reqs[*]} (scripts/lib/needs)"
  [ -x "$2/bin/python" ] || python3 -m venv "$2"
  "$2/bin/python" -m pip install --quiet --disable-pip-version-check "${reqs[@]}"
  printf '%s\n' "$want" >"$stamp"
}
