@testable import EdshimCore
import Foundation
import Testing

/// What DESIGN.md promises about the resources, read back from the encoded JSON so
/// that the golden files cannot quietly pin a wrong output.
@Suite("Envoy listener and cluster contract")
struct ListenerContractTests {
    static func resources(_ bytes: [UInt8]) throws -> [[String: Any]] {
        let document = try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
        return try #require(document["resources"] as? [[String: Any]])
    }

    static func filter(_ listener: [String: Any]) throws -> [String: Any] {
        let chains = try #require(listener["filter_chains"] as? [[String: Any]])
        #expect(chains.count == 1)
        let filters = try #require(chains.first?["filters"] as? [[String: Any]])
        #expect(filters.count == 1)
        return try #require(filters.first)
    }

    static func socketAddress(_ object: [String: Any]?) throws -> (String, Int) {
        let address = try #require(object?["socket_address"] as? [String: Any])
        return (try #require(address["address"] as? String), try #require(address["port_value"] as? Int))
    }

    @Test("an HTTP/1.0 request without Host gets the service name as a host name: lowercase, no underscore (Django refuses one)")
    func hostForHTTP10IsAHostName() throws {
        let registration = try Fixture.registration(host: "127.0.0.1", 8080, container: "172.17.0.2", 80, service: "Caf_Cr_me", mode: .http)
        let listener = try #require(try Self.resources(try DiscoveryDocument.listeners([ListenerBuilder.listener(for: registration)])).first)
        let chains = try #require(listener["filter_chains"] as? [[String: Any]])
        let manager = try #require((chains.first?["filters"] as? [[String: Any]])?.first?["typed_config"] as? [String: Any])
        let options = try #require(manager["http_protocol_options"] as? [String: Any])
        #expect(registration.serviceName.contains("_"), "\(registration.serviceName)")
        let host = try #require(options["default_host_for_http_10"] as? String)
        #expect(host == registration.serviceName.lowercased().replacingOccurrences(of: "_", with: "-"), "\(host)")
        #expect(host.allSatisfy { $0.isLowercase || $0.isNumber || $0 == "-" }, "\(host)")
    }

    @Test("http-only: one filter chain, the connection manager's, for every connection: no inspector, no relay as TCP")
    func httpOnlyHasNoTCPFallback() throws {
        let registration = try Fixture.registration(host: "0.0.0.0", 8080, container: "172.17.0.2", 80, service: "web", mode: .httpOnly)
        let listener = try #require(try Self.resources(try DiscoveryDocument.listeners([ListenerBuilder.listener(for: registration)])).first)
        let filter = try Self.filter(listener)
        #expect(filter["name"] as? String == "envoy.filters.network.http_connection_manager")
        let chains = try #require(listener["filter_chains"] as? [[String: Any]])
        #expect(chains.first?["filter_chain_match"] == nil, "every connection, whatever its first bytes")
        #expect(listener["listener_filters"] == nil && listener["default_filter_chain"] == nil, "\(listener.keys.sorted())")
        #expect(ProxyMode(label: " HTTP-Only ") == .httpOnly)
    }

    @Test func httpModeRoutesEverythingToTheServiceCluster() throws {
        let configuration = try EnvoyScenario.httpSinglePort.configuration()
        let listener = try #require(try Self.resources(try DiscoveryDocument.listeners(configuration.listeners)).first)
        #expect(listener["name"] as? String == "tcp_0.0.0.0_8080")
        let (address, port) = try Self.socketAddress(listener["address"] as? [String: Any])
        #expect(address == "0.0.0.0" && port == 8080)

        let filter = try Self.filter(listener)
        #expect(filter["name"] as? String == "envoy.filters.network.http_connection_manager")
        let manager = try #require(filter["typed_config"] as? [String: Any])
        #expect(manager["@type"] as? String == HTTPConnectionManager.typeURL)
        #expect(manager["stat_prefix"] as? String == "nginx-prod-8080")
        #expect(manager["use_remote_address"] as? Bool == true, "X-Forwarded-For carries the client address")
        #expect(manager["generate_request_id"] as? Bool == true)
        let routeConfig = try #require(manager["route_config"] as? [String: Any])
        let hosts = try #require(routeConfig["virtual_hosts"] as? [[String: Any]])
        #expect(hosts.count == 1)
        #expect(hosts.first?["domains"] as? [String] == ["*"])
        let routes = try #require(hosts.first?["routes"] as? [[String: Any]])
        #expect(routes.count == 1)
        let route = try #require(routes.first)
        #expect((route["match"] as? [String: Any])?["prefix"] as? String == "/")
        let action = try #require(route["route"] as? [String: Any])
        #expect(action["cluster"] as? String == "nginx-prod-8080")
        #expect(action["timeout"] as? String == "0s", "no route timeout")
        #expect((route["decorator"] as? [String: Any])?["operation"] as? String == "nginx")
        let httpFilters = try #require(manager["http_filters"] as? [[String: Any]])
        #expect(httpFilters.last?["name"] as? String == "envoy.filters.http.router")
    }

    @Test func tcpModeIsATCPProxyToTheServiceCluster() throws {
        let configuration = try EnvoyScenario.tcpMode.configuration()
        let listener = try #require(try Self.resources(try DiscoveryDocument.listeners(configuration.listeners)).first)
        let filter = try Self.filter(listener)
        #expect(filter["name"] as? String == "envoy.filters.network.tcp_proxy")
        let proxy = try #require(filter["typed_config"] as? [String: Any])
        #expect(proxy["@type"] as? String == TCPProxy.typeURL)
        #expect(proxy["cluster"] as? String == "postgres-5432-127_0_0_1", "published on one host address: the address is part of the name")
        #expect(proxy["stat_prefix"] as? String == "postgres-5432-127_0_0_1")
    }

    @Test func clusterPointsAtTheContainer() throws {
        let configuration = try EnvoyScenario.httpSinglePort.configuration()
        let cluster = try #require(try Self.resources(try DiscoveryDocument.clusters(configuration.clusters)).first)
        #expect(cluster["name"] as? String == "nginx-prod-8080")
        let assignment = try #require(cluster["load_assignment"] as? [String: Any])
        #expect(assignment["cluster_name"] as? String == "nginx-prod-8080")
        let localities = try #require(assignment["endpoints"] as? [[String: Any]])
        let endpoints = try #require(localities.first?["lb_endpoints"] as? [[String: Any]])
        #expect(endpoints.count == 1)
        let endpoint = try #require(endpoints.first?["endpoint"] as? [String: Any])
        let (address, port) = try Self.socketAddress(endpoint["address"] as? [String: Any])
        #expect(address == "172.17.0.2" && port == 80)
    }

    @Test func twinsGetDistinctListenersAndOneCluster() throws {
        let configuration = try EnvoyScenario.dualStackTwins.configuration()
        #expect(configuration.listeners.map(\.name) == ["tcp_0.0.0.0_8080", "tcp_[::]_8080"])
        #expect(configuration.clusters.map(\.name) == ["nginx-prod-8080"])
        #expect(configuration.listeners.allSatisfy { $0.referencedClusters == ["nginx-prod-8080"] })
        let cluster = try #require(try Self.resources(try DiscoveryDocument.clusters(configuration.clusters)).first)
        let assignment = try #require(cluster["load_assignment"] as? [String: Any])
        let localities = try #require(assignment["endpoints"] as? [[String: Any]])
        #expect((localities.first?["lb_endpoints"] as? [[String: Any]])?.count == 1, "the shared container endpoint appears once")
        let listeners = try Self.resources(try DiscoveryDocument.listeners(configuration.listeners))
        let addresses = try listeners.map { try Self.socketAddress($0["address"] as? [String: Any]).0 }
        #expect(addresses == ["0.0.0.0", "::"])
    }

    /// Any label value yields names Envoy accepts.
    @Test func hostileLabelsYieldSafeNames() throws {
        let labels = ["a.b:c/d e", "\"}{\n", "日本語", String(repeating: "x.", count: 500), "", "🚀"]
        var registrations: [Registration] = []
        for (index, label) in labels.enumerated() {
            registrations.append(try Fixture.registration(host: "0.0.0.0", UInt16(9000 + index), container: "172.17.0.2", 80, service: label, environment: label, mode: index % 2 == 0 ? .http : .tcp))
        }
        let configuration = EnvoyConfiguration(registrations: registrations)
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
        for cluster in configuration.clusters {
            #expect(cluster.name.allSatisfy(allowed.contains), "\(cluster.name)")
        }
        for listener in configuration.listeners {
            for name in listener.referencedClusters {
                #expect(name.allSatisfy(allowed.contains), "\(name)")
            }
        }
        #expect(configuration.missingClusters.isEmpty)
        #expect(throws: Never.self) { try JSONSerialization.jsonObject(with: Data(try DiscoveryDocument.listeners(configuration.listeners))) }
    }

    /// DESIGN.md: per TCP registration, a listener and a cluster whose endpoint is
    /// that registration's container. Only the 0.0.0.0 and :: twins share a cluster,
    /// so traffic for one host address never reaches another address's container.
    @Test func eachListenerReachesOnlyItsOwnContainer() throws {
        let scenarios: [[Registration]] = [
            // Two unlabelled containers on the same port of two host addresses.
            [
                try Fixture.registration(host: "127.0.0.1", 8080, container: "172.17.0.2", 80),
                try Fixture.registration(host: "10.0.0.5", 8080, container: "172.17.0.3", 80),
            ],
            // Same labels, same port, different host addresses.
            [
                try Fixture.registration(host: "127.0.0.1", 8080, container: "172.17.0.2", 80, service: "web"),
                try Fixture.registration(host: "192.168.1.10", 8080, container: "172.17.0.3", 80, service: "web"),
            ],
            // Different labels that happen to join into the same service name.
            [
                try Fixture.registration(host: "127.0.0.1", 80, container: "172.17.0.2", 80, service: "a-b"),
                try Fixture.registration(host: "127.0.0.2", 80, container: "172.17.0.3", 80, service: "a", environment: "b"),
            ],
        ]
        for registrations in scenarios {
            let configuration = EnvoyConfiguration(registrations: registrations)
            let clustersByName = Dictionary(configuration.clusters.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
            for registration in registrations {
                let listenerName = ServiceNaming.listenerName(for: registration.key)
                let listener = try #require(configuration.listeners.first { $0.name == listenerName })
                #expect(!listener.referencedClusters.isEmpty, "\(listenerName) routes to no cluster")
                for clusterName in listener.referencedClusters {
                    let cluster = try #require(clustersByName[clusterName])
                    let endpoints = cluster.loadAssignment.endpoints.flatMap(\.lbEndpoints).map(\.endpoint.address)
                    #expect(endpoints == [EnvoyAddress(registration.container)], "\(listenerName) must reach only \(registration.container), its cluster \(clusterName) has \(endpoints.map(\.socketAddress.address))")
                }
            }
        }
    }
}
