#!/usr/bin/env bash
# Installs what a fresh clone needs: a pinned pnpm and the workspace's dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
PNPM_VERSION=12.4.2
if ! command -v pnpm >/dev/null 2>&1 || [ "$(pnpm --version)" != "$PNPM_VERSION" ]; then
  npm i -g "pnpm@$PNPM_VERSION" >/dev/null
fi
# Native addons (better-sqlite3) build against the local Node headers: no prebuilt downloads here.
npm_config_nodedir="$(npm config get nodedir)"
export npm_config_nodedir
pnpm install --frozen-lockfile
