#!/bin/sh
# Runs Envoy from the official image with host networking, configured by edshim.
# edshim server must already be running (it writes /var/lib/edshim/xds).
set -eu
mkdir -p /etc/edshim
edshim bootstrap --xds-dir /var/lib/edshim/xds --admin-address 127.0.0.1:9901 > /etc/edshim/envoy.yaml
# Envoy writes the access log of every published port to its stdout (edshim server
# --access-log): keep Docker's copy of it bounded. With --access-log FILE instead,
# mount FILE's directory at the same path, read-write (-v /var/log/edshim:/var/log/edshim).
exec docker run -d --name envoy-edshim --restart always --network host \
    --user 0 \
    --log-opt max-size=100m --log-opt max-file=5 \
    -v /etc/edshim/envoy.yaml:/etc/envoy/envoy.yaml:ro \
    -v /var/lib/edshim/xds:/var/lib/edshim/xds:ro \
    envoyproxy/envoy:v1.40-latest -c /etc/envoy/envoy.yaml --disable-hot-restart --file-flush-interval-msec 1000
