# The rewardstream image: the CLI (worker, ingest, backfill, fit, topics, demo) on Python 3.11.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY pipeline ./pipeline
COPY schemas ./schemas
COPY config ./config
RUN rm -f pipeline/events/schemas && cp -r schemas pipeline/events/schemas \
    && pip install --no-cache-dir . && useradd --create-home rewardstream
USER rewardstream
ENTRYPOINT ["rewardstream"]
