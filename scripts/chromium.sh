#!/usr/bin/env bash
# Ensures Debian's Chromium for the dashboard's browser test (playwright-core drives it).
set -euo pipefail
command -v chromium >/dev/null 2>&1 && exit 0
export DEBIAN_FRONTEND=noninteractive
apt-get install -y chromium >/dev/null 2>&1 || { apt-get update >/dev/null 2>&1 && apt-get install -y chromium >/dev/null; }
command -v chromium >/dev/null
