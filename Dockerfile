# Rationale image: the API (`rationale serve`) and the batch worker (`rationale worker`).
# Stage 1 builds a virtual environment from the hashed runtime lock (requirements.lock,
# runtime dependencies only); stage 2 holds that environment, the package's models and
# nothing else, and runs as an unprivileged user.
FROM python:3.11-slim AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy

RUN pip install --no-cache-dir "uv==0.13.8" && python -m venv /opt/venv

WORKDIR /src
COPY requirements.lock ./
# The install reads the lock and nothing else: no uv config, no resolving again (--no-deps: the
# lock is the whole set), and the project builds with the locked setuptools.
RUN uv pip install --no-config --python /opt/venv/bin/python --no-deps --require-hashes \
    --no-cache -r requirements.lock

COPY pyproject.toml README.md ./
COPY app ./app
RUN uv pip install --no-config --python /opt/venv/bin/python --no-deps --no-build-isolation \
    --no-cache .

FROM python:3.11-slim AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    OPENBLAS_NUM_THREADS=1 \
    OMP_NUM_THREADS=1 \
    PATH=/opt/venv/bin:$PATH \
    RATIONALE_MODELS_DIR=/srv/rationale/models

# LightGBM's library is built against OpenMP: the runtime needs libgomp1 (the slim image has none).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1=12.* \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 rationale \
    && useradd --system --uid 10001 --gid 10001 --home-dir /srv/rationale rationale

WORKDIR /srv/rationale
COPY --from=build /opt/venv /opt/venv
COPY models ./models
RUN mkdir -p var && chown 10001:10001 var

USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2).status != 200)"]
CMD ["rationale", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
