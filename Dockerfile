# heatutility: one image for web (gunicorn), worker and beat.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    DJANGO_SETTINGS_MODULE=heatutility.settings.production

# WeasyPrint (invoice PDFs) needs Pango; psycopg's binary wheel brings libpq.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz0b libharfbuzz-subset0 fonts-dejavu-core curl \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY heatutility ./heatutility
COPY customers ./customers
COPY metering ./metering
COPY tariffs ./tariffs
COPY billing ./billing
COPY templates ./templates
COPY manage.py ./
RUN pip install . \
    && DJANGO_SECRET_KEY=collectstatic-only python manage.py collectstatic --no-input

# the compose file's volumes mount on /data/media and /data/archive: a new volume takes
# the ownership of the image's directory, so heat can write PDFs and archives there
RUN useradd --create-home --uid 10001 heat \
    && mkdir -p /app/var /data/media /data/archive && chown heat /app/var /data/media /data/archive
USER heat
EXPOSE 8000
CMD ["gunicorn", "heatutility.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
