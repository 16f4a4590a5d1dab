import EdshimCore
import Foundation
import Testing

/// Envoy's metrics for a published port, as a Prometheus server scrapes them from
/// Envoy's admin endpoint: labelled with the service name.
@Suite("Metrics through Envoy")
struct MetricsTests {
    @Test("/stats/prometheus counts each service's requests under its name")
    func prometheusLabels() async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let port = try Sockets.freePort()
            #expect(try await bed.publish(SocketEndpoint(ip: .anyIPv4, port: port), to: backend.endpoint).isReady)
            for _ in 0..<3 {
                #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: port)).status == 200)
            }
            let service = "unknown-\(port)"
            let metrics = try bed.admin("/stats/prometheus").split(separator: "\n")
            #expect(metrics.contains("envoy_cluster_upstream_rq_total{envoy_cluster_name=\"\(service)\"} 3"), "\(metrics.filter { $0.contains(service) })")
            #expect(metrics.contains("envoy_http_downstream_rq_xx{envoy_response_code_class=\"2\",envoy_http_conn_manager_prefix=\"\(service)\"} 3"))
        }
    }
}
