@testable import EdshimCore
import Testing

/// `--tracing-otlp` and what it puts into the configuration.
@Suite("Tracing")
struct TracingTests {
    @Test(arguments: [
        ("http://127.0.0.1:4318", "127.0.0.1", 4318, "/v1/traces", "http://127.0.0.1:4318/v1/traces"),
        ("http://127.0.0.1", "127.0.0.1", 4318, "/v1/traces", "http://127.0.0.1:4318/v1/traces"),
        ("http://[::1]:9999/otlp/v1/traces", "::1", 9999, "/otlp/v1/traces", "http://[::1]:9999/otlp/v1/traces"),
        ("http://[0:0::1]", "::1", 4318, "/v1/traces", "http://[::1]:4318/v1/traces"),
        ("http://otel-collector.internal:4318/", "otel-collector.internal", 4318, "/", "http://otel-collector.internal:4318/"),
        ("http://localhost:4318", "localhost", 4318, "/v1/traces", "http://localhost:4318/v1/traces"),
    ])
    func parses(_ text: String, _ host: String, _ port: Int, _ path: String, _ description: String) throws {
        let collector = try #require(TracingCollector(parsing: text))
        #expect(collector.host == host)
        #expect(collector.port == UInt16(port))
        #expect(collector.path == path)
        #expect(collector.description == description)
    }

    @Test("anything else is refused", arguments: [
        "", "127.0.0.1:4318", "https://127.0.0.1:4318", "grpc://127.0.0.1:4317", "http://", "http://:4318", "http://127.0.0.1:0",
        "http://127.0.0.1:70000", "http://127.0.0.1:x", "http://[::1", "http://[127.0.0.1]:4318", "http://::1:4318",
        "http://host_name:4318", "http://-host:4318", "http://a..b:4318", "http://127.0.0.1:4318/a b", "http://127.0.0.1:4318/\"",
    ])
    func refuses(_ text: String) {
        #expect(TracingCollector(parsing: text) == nil)
    }

    @Test("HTTP listeners are traced under the service label, with the environment and edshim's service name; TCP listeners are not")
    func listeners() throws {
        let collector = try #require(TracingCollector(parsing: "http://127.0.0.1:4318"))
        let http = try Fixture.registration(host: "0.0.0.0", 8080, container: "172.17.0.2", 80, service: "nginx", environment: "prod", mode: .http)
        let tcp = try Fixture.registration(host: "0.0.0.0", 5432, container: "172.17.0.3", 5432, service: "db", mode: .tcp)
        let configuration = EnvoyConfiguration(registrations: [http, tcp], telemetry: Telemetry(tracing: collector))
        let managers = configuration.listeners.compactMap { listener -> HTTPConnectionManager? in
            guard case .http(let manager) = listener.filterChains.first?.filters.first?.config else { return nil }
            return manager
        }
        let tracing = try #require(managers.first?.tracing)
        #expect(managers.count == 1)
        #expect(tracing.provider.typedConfig.message.serviceName == "nginx")
        #expect(tracing.provider.typedConfig.message.httpService.httpUri.uri == "http://127.0.0.1:4318/v1/traces")
        #expect(tracing.customTags?.map(\.tag) == ["edshim.service", "deployment.environment.name"])
        #expect(tracing.customTags?.map(\.literal.value) == ["nginx-prod-8080", "prod"])
        #expect(configuration.clusters.map(\.name).contains(TracingCollector.clusterName))
        #expect(configuration.missingClusters.isEmpty)

        // Without its collector's cluster, the configuration is inconsistent: never published.
        let withoutCollector = EnvoyConfiguration(listeners: configuration.listeners, clusters: configuration.clusters.filter { $0.name != TracingCollector.clusterName })
        #expect(withoutCollector.missingClusters == [TracingCollector.clusterName])
    }

    @Test("a collector named by host name is resolved by Envoy (IPv4 first); one named by address is static")
    func collectorCluster() throws {
        let named = TracingBuilder.cluster(for: try #require(TracingCollector(parsing: "http://otel.internal:4318")))
        #expect(named.type == "STRICT_DNS")
        #expect(named.dnsLookupFamily == "V4_PREFERRED")
        #expect(named.loadAssignment.endpoints.first?.lbEndpoints.first?.endpoint.address.socketAddress.address == "otel.internal")
        let addressed = TracingBuilder.cluster(for: try #require(TracingCollector(parsing: "http://[::1]:4318")))
        #expect(addressed.type == "STATIC")
        #expect(addressed.dnsLookupFamily == nil)
        #expect(addressed.loadAssignment.endpoints.first?.lbEndpoints.first?.endpoint.address.socketAddress.address == "::1")
    }

    @Test("--tracing-sample below 100 becomes random_sampling; 100 leaves Envoy's default (and the bytes) alone", arguments: [
        (100.0, nil as Double?), (10, 10), (0.5, 0.5), (0, 0),
    ])
    func sampling(_ percent: Double, _ expected: Double?) throws {
        let collector = try #require(TracingCollector(parsing: "http://127.0.0.1:4318"))
        let http = try Fixture.registration(host: "0.0.0.0", 8080, container: "172.17.0.2", 80, service: "nginx", mode: .http)
        let listener = ListenerBuilder.listener(for: http, telemetry: Telemetry(tracing: collector, tracingSamplePercent: percent))
        guard case .http(let manager) = listener.filterChains.first?.filters.first?.config else {
            Issue.record("an HTTP-mode registration gave a listener without an HTTP connection manager")
            return
        }
        #expect(manager.tracing?.randomSampling?.value == expected)
        let document = String(decoding: try DiscoveryDocument.listeners([listener]), as: UTF8.self)
        #expect(document.contains("random_sampling") == (expected != nil))
    }

    @Test("no collector: no tracing anywhere")
    func off() throws {
        let http = try Fixture.registration(host: "0.0.0.0", 8080, container: "172.17.0.2", 80, service: "nginx", mode: .http)
        let configuration = EnvoyConfiguration(registrations: [http])
        let document = String(decoding: try DiscoveryDocument.listeners(configuration.listeners), as: UTF8.self)
        #expect(!document.contains("tracing"))
        #expect(!configuration.clusters.map(\.name).contains(TracingCollector.clusterName))
    }
}
