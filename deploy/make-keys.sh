#!/usr/bin/env bash
# The one key step before `docker compose up -d` (README, "Docker Compose"):
#
#   eval "$(deploy/make-keys.sh)"         # keys/ in this repository
#   eval "$(deploy/make-keys.sh DIR)"     # another directory (also exports VERIFIER_KEYS_DIR=DIR for compose)
#
# Writes into the directory (made 0700):
#   signing.pem             the EAR signing key (P-256; `verifier keys generate`, else openssl)   0400, uid 10001
#   tls.key, tls.crt        a self-signed TLS certificate for localhost, verifier, 127.0.0.1, ::1  0400 uid 10001 / 0444
#   admin.token             an admin bearer token (yours: 0600)
#   grafana-admin.password  Grafana's admin password                                               0400, uid 472
#   compose.env             VERIFIER_ADMIN_TOKEN_SHA256 (and VERIFIER_KEYS_DIR) for `docker compose --env-file`
# and prints the export lines on stdout (everything else goes to stderr), so `eval` sets them in this shell.
#
# The verifier container runs as uid 10001 (Grafana's as 472) and Compose bind-mounts file secrets with the host
# file's owner and mode, so the files those containers read are chowned to them (as root directly, else through
# sudo). VERIFIER_KEY_UID / VERIFIER_KEY_GID (default 10001) and GRAFANA_UID / GRAFANA_GID (472) change that,
# e.g. for rootless engines whose container uids map to subordinate host uids. Refuses to replace existing keys
# unless --force.
set -euo pipefail

usage() { echo "usage: $0 [--force] [DIR]   (default DIR: the repository's keys/)" >&2; exit 64; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FORCE=0
DIR=""
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    -h|--help) usage ;;
    -*) usage ;;
    *) [ -z "$DIR" ] || usage; DIR=$arg ;;
  esac
done
DEFAULT_DIR=0
if [ -z "$DIR" ]; then DIR=$ROOT/keys; DEFAULT_DIR=1; fi
KEY_UID=${VERIFIER_KEY_UID:-10001}
KEY_GID=${VERIFIER_KEY_GID:-10001}
GRAFANA_UID=${GRAFANA_UID:-472}
GRAFANA_GID=${GRAFANA_GID:-$GRAFANA_UID}

say() { echo "make-keys: $*" >&2; }
die() { say "$*"; exit 1; }

command -v openssl >/dev/null 2>&1 || die "openssl is required"
umask 077
mkdir -p "$DIR"
chmod 0700 "$DIR"
DIR=$(cd "$DIR" && pwd)

if [ -e "$DIR/signing.pem" ] && [ "$FORCE" != 1 ]; then
  die "$DIR/signing.pem exists; keep it (its JWKS is what relying parties pinned) or pass --force to replace every key"
fi
rm -f "$DIR/signing.pem" "$DIR/tls.key" "$DIR/tls.crt" "$DIR/admin.token" "$DIR/grafana-admin.password" \
  "$DIR/compose.env"

# The signing key: the project's own command where it is installed (it writes PKCS#8 PEM, 0600), else openssl
# (the same format). VERIFIER names the command; VERIFIER=openssl uses openssl.
VERIFIER=${VERIFIER:-}
if [ -z "$VERIFIER" ]; then
  if command -v verifier >/dev/null 2>&1; then VERIFIER=verifier
  elif [ -x "$ROOT/.venv/bin/verifier" ]; then VERIFIER=$ROOT/.venv/bin/verifier
  else VERIFIER=openssl
  fi
fi
if [ "$VERIFIER" != openssl ]; then
  "$VERIFIER" keys generate --out "$DIR/signing.pem" >&2
else
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$DIR/signing.pem"
  say "wrote $DIR/signing.pem (openssl)"
fi

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 -sha256 \
  -subj "/CN=localhost" \
  -addext "subjectAltName=DNS:localhost,DNS:verifier,IP:127.0.0.1,IP:::1" \
  -keyout "$DIR/tls.key" -out "$DIR/tls.crt" 2>/dev/null
say "wrote $DIR/tls.crt and $DIR/tls.key (self-signed: clients trust this certificate itself)"

TOKEN=$(openssl rand -hex 32)
printf '%s\n' "$TOKEN" > "$DIR/admin.token"
DIGEST=$(printf '%s' "$TOKEN" | openssl dgst -sha256 -r | cut -d' ' -f1)
say "wrote $DIR/admin.token (send it as \`authorization: Bearer <token>\`; the server keeps only its SHA-256)"
openssl rand -base64 18 > "$DIR/grafana-admin.password"
say "wrote $DIR/grafana-admin.password (Grafana user admin; anonymous visitors can only view)"

{
  echo "VERIFIER_ADMIN_TOKEN_SHA256=$DIGEST"
  if [ "$DEFAULT_DIR" != 1 ]; then echo "VERIFIER_KEYS_DIR=$DIR"; fi
} > "$DIR/compose.env"

chmod 0400 "$DIR/signing.pem" "$DIR/tls.key" "$DIR/grafana-admin.password"
chmod 0444 "$DIR/tls.crt"
chmod 0600 "$DIR/admin.token" "$DIR/compose.env"

# Ownership last: after it, only the containers' uids (and root) can read these files. As root (or when the uid is
# already yours) chown works directly; otherwise through sudo.
give() {
  chown "$@" 2>/dev/null && return 0
  if command -v sudo >/dev/null 2>&1; then sudo chown "$@" && return 0; fi
  die "cannot chown $* (not root, no sudo): run \`sudo chown $*\`, then \`docker compose up -d\`"
}
give "$KEY_UID:$KEY_GID" "$DIR/signing.pem" "$DIR/tls.key"
give "$GRAFANA_UID:$GRAFANA_GID" "$DIR/grafana-admin.password"
say "signing.pem and tls.key now belong to uid $KEY_UID (the verifier container's user), mode 0400"

echo "export VERIFIER_ADMIN_TOKEN_SHA256=$DIGEST"
if [ "$DEFAULT_DIR" != 1 ]; then printf 'export VERIFIER_KEYS_DIR=%q\n' "$DIR"; fi
say "next: docker compose up -d   (in another shell: docker compose --env-file $DIR/compose.env up -d)"
