@testable import EdshimCore
import Testing

@Suite("ServiceNaming")
struct ServiceNamingTests {
    @Test(arguments: [
        ("nginx", "prod", UInt16(8080), "nginx-prod-8080"),
        ("nginx", nil, 8080, "nginx-8080"),
        ("nginx", "", 8080, "nginx-8080"),
        ("nginx", "   ", 8080, "nginx-8080"),
        ("nginx", "...", 8080, "nginx-8080"),
        (nil, "prod", 80, "unknown-prod-80"),
        (nil, nil, 80, "unknown-80"),
        ("", "", 443, "unknown-443"),
        ("///", "staging", 443, "unknown-staging-443"),
        ("my app", "eu.west-1", 9000, "my_app-eu_west-1-9000"),
        ("api:v2", "prod/blue", 1, "api_v2-prod_blue-1"),
    ] as [(String?, String?, UInt16, String)])
    func serviceName(_ service: String?, _ environment: String?, _ port: UInt16, _ expected: String) throws {
        let registration = try Fixture.registration(host: "0.0.0.0", port, container: "172.17.0.2", 80, service: service, environment: environment)
        #expect(registration.serviceName == expected)
        #expect(ServiceNaming.serviceName(for: registration.key, metadata: registration.metadata) == expected)
    }

    @Test func theServicePartNamesTheTracingOperation() {
        #expect(ServiceNaming.service(ContainerMetadata(service: "nginx")) == "nginx")
        #expect(ServiceNaming.service(ContainerMetadata(service: "my app")) == "my_app")
        #expect(ServiceNaming.service(.unknown) == ServiceNaming.unknownService)
        #expect(ServiceNaming.service(ContainerMetadata(service: "🚀")) == "unknown")
    }

    @Test func twinsShareTheServiceName() throws {
        let v4 = try Fixture.registration(host: "0.0.0.0", 8080, container: "172.17.0.2", 80, service: "nginx", environment: "prod")
        let v6 = try Fixture.registration(host: "::", 8080, container: "172.17.0.2", 80, service: "nginx", environment: "prod")
        #expect(v4.serviceName == v6.serviceName)
    }

    @Test(arguments: [
        (TransportProtocol.tcp, "0.0.0.0", UInt16(8080), "tcp_0.0.0.0_8080"),
        (.tcp, "::", 8080, "tcp_[::]_8080"),
        (.tcp, "0:0::0", 8080, "tcp_[::]_8080"),
        (.tcp, "::1", 9901, "tcp_[::1]_9901"),
        (.tcp, "127.0.0.1", 80, "tcp_127.0.0.1_80"),
        (.udp, "fd00::2", 53, "udp_[fd00::2]_53"),
    ])
    func listenerName(_ proto: TransportProtocol, _ ip: String, _ port: UInt16, _ expected: String) throws {
        #expect(ServiceNaming.listenerName(for: try Fixture.key(proto, ip, port)) == expected)
    }

    @Test func listenerNamesDependOnTheKeyAlone() throws {
        let plain = try Fixture.registration(host: "0.0.0.0", 8080, container: "172.17.0.2", 80)
        let labelled = try Fixture.registration(host: "0.0.0.0", 8080, container: "172.17.0.9", 81, service: "web", environment: "prod", mode: .tcp)
        #expect(ServiceNaming.listenerName(for: plain.key) == ServiceNaming.listenerName(for: labelled.key))
    }
}
