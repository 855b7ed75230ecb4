# Rationale API image: installs from the same hashed lock as `make`, runs `rationale serve`.
FROM python:3.11-slim AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    OPENBLAS_NUM_THREADS=1 \
    OMP_NUM_THREADS=1 \
    RATIONALE_MODELS_DIR=/srv/rationale/models

WORKDIR /srv/rationale
RUN pip install --no-cache-dir "uv==0.13.8" && useradd --system --uid 10001 rationale

COPY requirements.lock pyproject.toml README.md ./
RUN uv pip install --system --require-hashes --no-cache -r requirements.lock

COPY app ./app
COPY models ./models
RUN uv pip install --system --no-deps --no-cache . && mkdir -p var && chown rationale var

USER rationale
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz').status != 200)"
CMD ["rationale", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
