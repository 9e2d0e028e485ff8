# careers-edge: the proxy as a container. Mount the rules file at /etc/careers-edge/rules.toml.
FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY proxy ./proxy
COPY rules ./rules
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.12-slim
RUN useradd --create-home --uid 10001 edge \
 && mkdir -p /var/lib/careers-edge /etc/careers-edge \
 && chown edge:edge /var/lib/careers-edge
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels /root/.cache
COPY rules/example.toml /etc/careers-edge/example.toml
USER edge
WORKDIR /var/lib/careers-edge
ENV CAREERS_EDGE_LISTEN=0.0.0.0:8080
# The operators' listener (metrics, readyz): publish it only to your monitoring network,
# and set [admin] token when anyone else can reach it.
ENV CAREERS_EDGE_ADMIN_LISTEN=0.0.0.0:9180
EXPOSE 8080 9180
VOLUME ["/var/lib/careers-edge"]
# healthz answers on the public port whatever the Host (probes come by IP address).
HEALTHCHECK --interval=15s --timeout=3s --start-period=5s --retries=3 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/_edge/healthz', timeout=2)" || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["careers-edge", "run", "-c", "/etc/careers-edge/rules.toml"]
