# The verifier image: `verifier serve` by default. Build context: this repository; .dockerignore lets in only
# pyproject.toml, README.md, verifier/, measurements/ and deploy/image-requirements.lock.
#
# Stage 1 builds the wheel (the alembic migrations travel inside it as package data, verifier/migrations/) with the
# base image's own setuptools and wheel (--no-build-isolation): nothing is downloaded. Stage 2 installs the wheel's
# dependencies from deploy/image-requirements.lock, where every distribution is pinned with its SHA-256 (pip refuses
# anything else, and --only-binary keeps it from building anything), then the wheel itself with --no-deps, and
# `pip check` fails the build if the lock does not satisfy the wheel's requirements. The image runs exactly what
# the lock names, not the tree (no -e).
#
# Base image, both stages: python:3.11-slim pinned by the digest of its multi-platform index as the Docker
# official-images tooling recorded it in github.com/docker-library/repo-info, repos/python/remote/3.11-slim.md at
# commit 2477d553d2fdfa57b4ec11f63c8376eca8b7a253 (Python 3.11.15 on Debian trixie, built 2026-08-05; linux/amd64,
# arm64 and others). To move it: take the index digest of a newer version of that file (or `docker buildx
# imagetools inspect python:3.11-slim`), and regenerate the lock if the Python minor version changes:
#   uv pip compile pyproject.toml --generate-hashes --python-version 3.11 \
#       --python-platform x86_64-unknown-linux-gnu -o deploy/image-requirements.lock
FROM python:3.11-slim@sha256:90744cff8f32887f075c47d747a173ff333e9e98801667af93c357fa9f5e28ff AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY verifier ./verifier
RUN pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels .

FROM python:3.11-slim@sha256:90744cff8f32887f075c47d747a173ff333e9e98801667af93c357fa9f5e28ff
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
# The dependencies first, in their own layer: a change to the code does not reinstall them.
COPY deploy/image-requirements.lock /tmp/image-requirements.lock
RUN pip install --no-cache-dir --require-hashes --only-binary :all: --no-deps -r /tmp/image-requirements.lock \
    && rm /tmp/image-requirements.lock
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-deps /wheels/*.whl && pip check && rm -rf /wheels \
    && groupadd --system --gid 10001 verifier \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin verifier
COPY measurements ./measurements
# Numeric, so that Kubernetes' runAsNonRoot can check it. Files the verifier reads (the signing key, the TLS key)
# must be readable by this uid: `install -m 0400 -o 10001 -g 10001` (deploy/make-keys.sh does it for compose).
USER 10001:10001
EXPOSE 50051 9464
ENTRYPOINT ["verifier"]
CMD ["serve", "--listen", "0.0.0.0:50051", "--http-listen", "0.0.0.0:9464"]
