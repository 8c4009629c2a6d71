#!/usr/bin/env bash
# Property-based tests of the HTTP API against its OpenAPI document, with schemathesis (PyPI).
# Not part of CI: it takes minutes and needs Python. Run against a server you started:
#
#   cargo run --release -- serve &              # or any running heartwatch
#   pip install schemathesis
#   scripts/schemathesis.sh [URL]               # default http://127.0.0.1:7701
#
# With auth.http_token set on the server, export HEARTWATCH_HTTP_TOKEN first. A few clients
# beating (heartwatch beat --proj P-17) give the client endpoints something to find.
# MAX_TIME (seconds, default 120) bounds the run. Findings are written up in
# docs/reliability.md.
#
# /api/v1/events is excluded: a server-sent-events stream never ends, so every request to it
# would only run into the request timeout.
set -euo pipefail

url="${1:-http://127.0.0.1:7701}"
url="${url%/}"
command -v schemathesis >/dev/null || { echo "schemathesis not found: pip install schemathesis" >&2; exit 2; }

auth=()
if [[ -n "${HEARTWATCH_HTTP_TOKEN:-}" ]]; then
  auth=(-H "Authorization: Bearer ${HEARTWATCH_HTTP_TOKEN}")
fi

exec schemathesis run "$url/api/v1/openapi.json" \
  --url "$url" \
  --checks all \
  --exclude-path /api/v1/events \
  --max-time "${MAX_TIME:-120}" \
  --request-timeout 5 \
  --workers 2 \
  --report junit --report-dir "${REPORT_DIR:-target/schemathesis}" \
  "${auth[@]}"
