# syntax=docker/dockerfile:1
# The veo-gateway image: `docker build -t veo-gateway .`, then `docker run veo-gateway` (serve)
# or `docker run veo-gateway worker`. deploy/compose.yaml runs it scaled out;
# tests/test_deploy.py checks this file against the real command and routes.

ARG PYTHON_VERSION=3.12

# Wheels of the project and of every dependency. All of them are published as wheels (PyAV's
# and Pillow's carry FFmpeg and the image libraries inside), so no compiler is needed.
FROM python:${PYTHON_VERSION}-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:${PYTHON_VERSION}-slim
# Installed from the build stage's wheels, mounted for this step only, so none stays behind.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels veo-gateway \
    && groupadd --system --gid 10001 veo-gateway \
    && useradd --system --uid 10001 --gid veo-gateway --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin veo-gateway \
    && mkdir /data && chown veo-gateway:veo-gateway /data

# One role per container, so `worker` listens where `serve` does: the health check and the load
# balancer find either on port 8000, on every interface of the container.
ENV PYTHONUNBUFFERED=1 \
    VEO_GATEWAY_HOST=0.0.0.0 \
    VEO_GATEWAY_PORT=8000 \
    VEO_GATEWAY_WORKER_PORT=8000 \
    VEO_GATEWAY_DATA_DIR=/data

USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000

# The standard library's HTTP client (the image has no curl), past any HTTP_PROXY the operator
# sets for the upstream. Any failure (refused, a status of 400 or more, a timeout) exits non-zero.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:' + os.environ.get('VEO_GATEWAY_PORT', '8000') + '/healthz', timeout=4)"]

ENTRYPOINT ["veo-gateway"]
CMD ["serve"]
