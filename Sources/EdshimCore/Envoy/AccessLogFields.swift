/// The fields of an access log line, as Envoy command strings. Every service logs
/// the same keys, so one query covers all of them; `service` is the service name
/// (a constant: sanitized names never hold the `%` of an Envoy command).
enum AccessLogFields {
    /// One line per HTTP request.
    static func http(serviceName: String) -> [String: String] {
        common(serviceName: serviceName).merging([
            "method": "%REQ(:METHOD)%",
            "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
            "protocol": "%PROTOCOL%",
            "authority": "%REQ(:AUTHORITY)%",
            "user_agent": "%REQ(USER-AGENT)%",
            "request_id": "%REQ(X-REQUEST-ID)%",
            "status": "%RESPONSE_CODE%",
            // Why Envoy answered as it did: `via_upstream` when the container did,
            // else Envoy's own reason (`request_header_timeout`, a codec error).
            "details": "%RESPONSE_CODE_DETAILS%",
        ]) { first, _ in first }
    }

    /// One line per TCP connection.
    static func tcp(serviceName: String) -> [String: String] {
        common(serviceName: serviceName)
    }

    private static func common(serviceName: String) -> [String: String] {
        [
            "start_time": "%START_TIME%",
            "service": serviceName,
            "client": "%DOWNSTREAM_REMOTE_ADDRESS%",
            // The connection's own peer: `client` is the X-Forwarded-For address
            // behind trusted proxies (`--trusted-proxy-hops`), this the proxy's.
            "peer": "%DOWNSTREAM_DIRECT_REMOTE_ADDRESS%",
            "upstream": "%UPSTREAM_HOST%",
            "bytes_received": "%BYTES_RECEIVED%",
            "bytes_sent": "%BYTES_SENT%",
            "duration_ms": "%DURATION%",
            "flags": "%RESPONSE_FLAGS%",
            // Why the connection to the container failed (`UF`): refused, timed out.
            "upstream_failure": "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
        ]
    }
}
