#!/usr/bin/env bash
# One command: set up and run the demo server (SQLite file zonekeeper.db in this folder).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/zonekeeper serve --demo "$@"
