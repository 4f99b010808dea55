# The verifier image: `verifier serve` by default. Build context: this repository.
# Stage 1 builds the wheel (the alembic migrations travel inside it as package data, verifier/migrations/);
# stage 2 installs that wheel, not the source tree (no -e), so the image runs exactly what a `pip install` would.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY verifier ./verifier
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels && useradd --system --uid 10001 verifier
COPY measurements ./measurements
USER verifier
EXPOSE 50051 9464
ENTRYPOINT ["verifier"]
CMD ["serve", "--listen", "0.0.0.0:50051", "--http-listen", "0.0.0.0:9464"]
