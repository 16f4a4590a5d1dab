#!/bin/sh
# Runs Envoy from the official image with host networking, configured by edshim.
# edshim server must already be running (it writes /var/lib/edshim/xds).
# Run again, it replaces the envoy-edshim container it started before. Nothing runs
# `edshim resync` after this container starts, as envoy-edshim.service's ExecStartPost
# does: when to run it by hand is in docs/operations.md ("Install").
set -eu
mkdir -p /etc/edshim /run/envoy-edshim
# The admin API on a socket only root may use (mounted below, for curl --unix-socket
# on the host), its reads (stats, Prometheus) on 127.0.0.1:9901: docs/operations.md.
edshim bootstrap --xds-dir /var/lib/edshim/xds --admin-address unix:/run/envoy-edshim/admin.sock \
    --stats-address 127.0.0.1:9901 > /etc/edshim/envoy.yaml
if docker container inspect envoy-edshim >/dev/null 2>&1; then
    echo "envoy-docker.sh: removing the existing container envoy-edshim; the new Envoy reads every port from /var/lib/edshim/xds" >&2
    docker rm -f envoy-edshim >/dev/null
fi
# Envoy writes the access log of every published port to its stdout (edshim server
# --access-log): keep Docker's copy of it bounded. With --access-log FILE instead,
# mount FILE's directory at the same path, read-write (-v /var/log/edshim:/var/log/edshim).
# Root, as the unit runs it (privileged ports; dockerd >= 28's SO_REUSEPORT sockets;
# the admin socket in /run/envoy-edshim): the image's entrypoint switches to its
# envoy user unless ENVOY_UID=0, whatever --user says.
exec docker run -d --name envoy-edshim --restart always --network host \
    --user 0 -e ENVOY_UID=0 \
    --log-opt max-size=100m --log-opt max-file=5 \
    -v /etc/edshim/envoy.yaml:/etc/envoy/envoy.yaml:ro \
    -v /var/lib/edshim/xds:/var/lib/edshim/xds:ro \
    -v /run/envoy-edshim:/run/envoy-edshim \
    envoyproxy/envoy:v1.40-latest -c /etc/envoy/envoy.yaml --disable-hot-restart --file-flush-interval-msec 1000
