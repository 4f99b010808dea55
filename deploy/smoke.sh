#!/usr/bin/env bash
# The compose stack, end to end, where a container engine is available (Docker Compose v2):
#   1. throwaway keys (deploy/make-keys.sh into a temporary directory: the repository's keys/ are not touched);
#   2. `docker compose up -d --build` under its own project name (SMOKE_PROJECT, default tee-verifier-smoke), so
#      its containers and its PostgreSQL volume are its own;
#   3. waits until the verifier's healthcheck (/readyz: serving and the database reachable) says healthy;
#   4. deploy/smoke_appraise.py, the project's own client: a challenge, the appraisal of the shared Nitro vector
#      over TLS, its token verified against the server's JWKS (at the real time the vector's certificates have
#      expired: a signed `contraindicated` result with CERT_EXPIRED is the expected answer), Prometheus scraping
#      the verifier, Grafana up. On the host when its Python can import the client, else in a container of the
#      built image on the stack's network;
#   5. tears everything down (a trap: also on failure or Ctrl-C), volumes included, after printing the logs when
#      something failed.
# Exit 0 with "skipped: no container engine" when `docker info` fails (no daemon, no permission to reach it).
# Uses the published ports 50051, 9464, 9090 and 3000: stop another stack of this repository first.
# VERIFIER_VECTORS: the shared vectors (default ../shared/vectors); SMOKE_TIMEOUT: seconds to wait (default 300).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if ! docker info >/dev/null 2>&1; then
  echo "skipped: no container engine (\`docker info\` failed: no Docker daemon reachable)"
  exit 0
fi
if ! docker compose version >/dev/null 2>&1; then
  echo "FAIL: Docker Compose v2 (\`docker compose\`) is required" >&2
  exit 1
fi

VECTORS=${VERIFIER_VECTORS:-$ROOT/../shared/vectors}
EVIDENCE=$VECTORS/nitro/nitro-prod-2024-blocky/evidence.bin
if [ ! -f "$EVIDENCE" ]; then
  echo "FAIL: no shared vector at $EVIDENCE (set VERIFIER_VECTORS)" >&2
  exit 1
fi
EVIDENCE=$(cd "$(dirname "$EVIDENCE")" && pwd)/$(basename "$EVIDENCE")
PROJECT=${SMOKE_PROJECT:-tee-verifier-smoke}
TIMEOUT=${SMOKE_TIMEOUT:-300}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/verifier-smoke.XXXXXX")

compose() { docker compose --project-directory "$ROOT" -f "$ROOT/docker-compose.yml" -p "$PROJECT" "$@"; }

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [ "$status" -ne 0 ]; then
    echo "smoke: failed (exit $status); the stack's state and logs:" >&2
    compose ps -a >&2 || true
    compose logs --no-color --tail 80 >&2 || true
  fi
  echo "smoke: tearing down" >&2
  compose down --volumes --remove-orphans >/dev/null 2>&1 || true
  rm -rf "$WORK" 2>/dev/null || true
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "smoke: throwaway keys in $WORK/keys" >&2
exports=$("$ROOT/deploy/make-keys.sh" "$WORK/keys")  # an assignment: a failing make-keys stops the script
eval "$exports"
export VERIFIER_KEYS_DIR VERIFIER_ADMIN_TOKEN_SHA256

echo "smoke: docker compose up (project $PROJECT)" >&2
compose up -d --build

echo "smoke: waiting for the verifier to be healthy (up to ${TIMEOUT}s)" >&2
deadline=$((SECONDS + TIMEOUT))
while :; do
  container=$(compose ps -q verifier 2>/dev/null || true)
  if [ -n "$container" ]; then
    health=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$container" 2>/dev/null || true)
    [ "$health" = healthy ] && break
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "FAIL: the verifier was not healthy within ${TIMEOUT}s (last: ${health:-no container})" >&2
    exit 1
  fi
  sleep 3
done
echo "smoke: verifier healthy" >&2

host_python=${SMOKE_PYTHON:-python3}
if PYTHONPATH=$ROOT "$host_python" -c 'import verifier.client' >/dev/null 2>&1; then
  PYTHONPATH=$ROOT "$host_python" "$ROOT/deploy/smoke_appraise.py" \
    --target localhost:50051 --ca "$VERIFIER_KEYS_DIR/tls.crt" --evidence "$EVIDENCE" \
    --expect-status contraindicated --expect-finding CERT_EXPIRED \
    --prometheus http://127.0.0.1:9090 --grafana http://127.0.0.1:3000
else
  echo "smoke: $host_python cannot import verifier.client: running the checks in the image" >&2
  compose run --rm --no-deps -T --entrypoint python \
    -v "$ROOT/deploy/smoke_appraise.py:/smoke/smoke_appraise.py:ro" \
    -v "$VERIFIER_KEYS_DIR/tls.crt:/smoke/tls.crt:ro" \
    -v "$EVIDENCE:/smoke/evidence.bin:ro" \
    verifier /smoke/smoke_appraise.py \
    --target verifier:50051 --ca /smoke/tls.crt --evidence /smoke/evidence.bin \
    --expect-status contraindicated --expect-finding CERT_EXPIRED \
    --prometheus http://prometheus:9090 --grafana http://grafana:3000
fi
echo "smoke: passed"
