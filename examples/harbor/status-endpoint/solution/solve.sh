#!/bin/bash
set -euo pipefail
printf '{"status": "ok", "version": "%s"}\n' "$(tr -d '[:space:]' < /app/www/VERSION)" > /app/www/health.json
