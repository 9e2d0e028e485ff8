# careers-edge: the proxy as a container. Mount the rules file at /etc/careers-edge/rules.toml.
# Runs as the numeric user 10001 (Kubernetes' runAsNonRoot can check it), with a
# read-only root filesystem if you like: it writes only /var/lib/careers-edge (state)
# and /tmp (the workers' shared metrics files).
FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY proxy ./proxy
COPY rules ./rules
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.12-slim
RUN groupadd --gid 10001 edge \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/careers-edge \
      --shell /usr/sbin/nologin edge \
 && mkdir -p /var/lib/careers-edge /etc/careers-edge \
 && chown 10001:10001 /var/lib/careers-edge
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels /root/.cache
COPY rules/example.toml /etc/careers-edge/example.toml
# CAREERS_EDGE_CONFIG: the rules file `careers-edge outbox` reads without -c.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CAREERS_EDGE_LISTEN=0.0.0.0:8080 \
    CAREERS_EDGE_CONFIG=/etc/careers-edge/rules.toml
USER 10001:10001
WORKDIR /var/lib/careers-edge
# 8080: visitors (public listener). 9180: operators (admin listener: healthz, readyz,
# metrics): publish it only to your monitoring network, and set [admin] token when
# anyone else can reach it.
ENV CAREERS_EDGE_ADMIN_LISTEN=0.0.0.0:9180
EXPOSE 8080 9180
VOLUME ["/var/lib/careers-edge"]
# Asks healthz on the admin address the rules file and the environment give (no curl
# in the image).
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["careers-edge", "healthcheck", "-c", "/etc/careers-edge/rules.toml"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["careers-edge", "run", "-c", "/etc/careers-edge/rules.toml"]
