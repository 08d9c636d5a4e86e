#!/usr/bin/env bash
# Set up everything zonekeeper needs on a fresh Debian machine: a venv with the pinned
# packages (and, with --test, the test tools and the DNS servers the tests run against).
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

DEBS=()
if [ "$want_test" = 1 ]; then
  # Real peers and clients for the tests: BIND (oracle), Knot and NSD, dig and kdig; dnsperf
  # for bench/; promtool (Debian prometheus) checks docs/prometheus-alerts.yml.
  for pair in named:bind9 named-checkzone:bind9-utils dig:bind9-dnsutils knotd:knot \
              kdig:knot-dnsutils nsd:nsd dnsperf:dnsperf promtool:prometheus; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${pair%%:*}" ] || DEBS+=("${pair#*:}")
  done
  # A PostgreSQL server for the PostgreSQL-backed tests (tests/conftest.py starts its own
  # cluster with initdb and pg_ctl, which Debian keeps off the PATH).
  compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null || DEBS+=(postgresql)
  # The browser the web console's tests drive through Playwright (never a downloaded one).
  command -v chromium >/dev/null 2>&1 || DEBS+=(chromium)
fi
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then DEBS+=(python3-venv); fi
# The UDP receive loop is a C extension built by the install: a compiler and Python's headers.
command -v cc >/dev/null 2>&1 || DEBS+=(gcc)
"${PYTHON:-python3}" -c 'import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
  || DEBS+=(python3-dev)
if [ "${#DEBS[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${DEBS[*]}" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${DEBS[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi

# Install only when something the install depends on changed: pyproject.toml (packages,
# entry points) or the package's files (the editable install maps them by name). The stamp
# in .venv records what was installed; an install with the test extras serves both uses.
STAMP=.venv/.zonekeeper-installed
# The package's modules compiled ahead (quick when they are up to date): where
# PYTHONDONTWRITEBYTECODE is set, as on many CI machines and containers, Python would
# otherwise compile every one of them again at each start of the server and the CLI.
if [ -x .venv/bin/python ] && [ -f "$STAMP" ]; then
  .venv/bin/python -m compileall -q zonekeeper >/dev/null || true
fi
sources=$( { sha256sum pyproject.toml; find zonekeeper -type f ! -name '*.pyc' ! -name '*.so' | LC_ALL=C sort; } \
           | sha256sum | cut -d' ' -f1)
extras=run; [ "$want_test" = 1 ] && extras=test
if [ -f "$STAMP" ] && [ "$(cut -d' ' -f1 "$STAMP")" = "$sources" ] \
   && { [ "$extras" = run ] || [ "$(cut -d' ' -f2 "$STAMP")" = test ]; }; then
  exit 0
fi
rm -f "$STAMP"
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
if [ "$want_test" = 1 ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
else
  .venv/bin/python -m pip install -q --disable-pip-version-check -e .
fi
.venv/bin/python -m compileall -q zonekeeper >/dev/null || true
echo "$sources $extras" > "$STAMP"
