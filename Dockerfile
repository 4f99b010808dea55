# The verifier image: `verifier serve` by default. Build context: this repository.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY verifier ./verifier
COPY migrations ./migrations
COPY measurements ./measurements
RUN pip install --no-cache-dir -e . && useradd --system --uid 10001 verifier
USER verifier
EXPOSE 50051 9464
ENTRYPOINT ["verifier"]
CMD ["serve", "--listen", "0.0.0.0:50051", "--http-listen", "0.0.0.0:9464"]
