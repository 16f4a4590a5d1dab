@testable import EdshimCore
import Testing

/// dockerd publishes a port on `0.0.0.0` and on `::`. Twins of one container share
/// a cluster; a twin serving another container must never be routed to through it.
@Suite("Registry names twins")
struct TwinNamingTests {
    static let webID = "3f2a9c1b7d0e" + String(repeating: "a", count: 52)
    static let apiID = "77b01c5e9a24" + String(repeating: "b", count: 52)

    static func web(_ host: String, owner: Owner = Fixture.owner) throws -> Registration {
        try Fixture.registration(host: host, 8080, container: "172.17.0.2", 80, owner: owner, containerID: webID)
    }

    static func api(_ host: String, owner: Owner = Fixture.owner) throws -> Registration {
        try Fixture.registration(host: host, 8080, container: "172.17.0.3", 80, owner: owner, containerID: apiID)
    }

    static func names(_ registry: Registry) -> [String] {
        registry.registrations.map(\.serviceName)
    }

    @Test func twinsOfOneContainerShareTheContractsName() throws {
        var registry = Registry()
        registry.register(try Self.web("0.0.0.0"))
        registry.register(try Self.web("::"))
        #expect(Self.names(registry) == ["unknown-8080", "unknown-8080"])
        #expect(EnvoyConfiguration(registrations: registry.registrations).clusters.map(\.name) == ["unknown-8080"])
    }

    @Test func aTwinServingAnotherContainerGetsItsShortID() throws {
        var registry = Registry()
        registry.register(try Self.web("0.0.0.0"))
        registry.register(try Self.api("::"))
        #expect(Self.names(registry) == ["unknown-8080", "unknown-8080-77b01c5e9a24"])

        let clusters = EnvoyConfiguration(registrations: registry.registrations).clusters
        #expect(clusters.map(\.name) == ["unknown-8080", "unknown-8080-77b01c5e9a24"])
        #expect(clusters.allSatisfy { $0.loadAssignment.endpoints.flatMap(\.lbEndpoints).count == 1 }, "each cluster reaches its own container only")
    }

    @Test func twinsToTwoPortsOfOneContainerDoNotShareACluster() throws {
        // docker run -p 0.0.0.0:8080:80 -p [::]:8080:81
        var registry = Registry()
        registry.register(try Self.web("0.0.0.0"))
        registry.register(try Fixture.registration(host: "::", 8080, container: "172.17.0.2", 81, containerID: Self.webID))
        #expect(Self.names(registry) == ["unknown-8080", "unknown-8080-3f2a9c1b7d0e"])

        let clusters = EnvoyConfiguration(registrations: registry.registrations).clusters
        #expect(clusters.map { $0.loadAssignment.endpoints.flatMap(\.lbEndpoints).count } == [1, 1], "each listener reaches its own container port only")
    }

    @Test("a registry restored with two containers under one name (a state file edited by hand) names the second apart; names restored as saved stay")
    func restoredNamesNeverShareAContainer() throws {
        let restored = Registry([try Self.web("0.0.0.0"), try Self.api("::")])
        #expect(Self.names(restored) == ["unknown-8080", "unknown-8080-77b01c5e9a24"])
        #expect(EnvoyConfiguration(registrations: restored.registrations).clusters.map(\.name) == ["unknown-8080", "unknown-8080-77b01c5e9a24"])

        var saved = Registry()
        saved.register(try Self.api("::"))
        saved.register(try Self.web("0.0.0.0"))
        #expect(Registry(saved.registrations) == saved, "a registry the server saved comes back as it was")
        let twins = Registry([try Self.web("0.0.0.0"), try Self.web("::")])
        #expect(Self.names(twins) == ["unknown-8080", "unknown-8080"])
    }

    @Test func whoeverCameFirstKeepsTheContractsName() throws {
        var registry = Registry()
        registry.register(try Self.api("::"))
        registry.register(try Self.web("0.0.0.0"))
        #expect(registry[try Self.api("::").key]?.serviceName == "unknown-8080")
        #expect(registry[try Self.web("0.0.0.0").key]?.serviceName == "unknown-8080-3f2a9c1b7d0e")
    }

    @Test func withoutDockerTheContainerAddressTellsThemApart() throws {
        var registry = Registry()
        registry.register(try Fixture.registration(host: "0.0.0.0", 8080, container: "172.17.0.2", 80))
        registry.register(try Fixture.registration(host: "::", 8080, container: "172.17.0.3", 80))
        registry.register(try Fixture.registration(host: "0.0.0.0", 9090, container: "172.17.0.4", 80))
        registry.register(try Fixture.registration(host: "::", 9090, container: "172.17.0.4", 80))
        #expect(Self.names(registry) == ["unknown-8080", "unknown-9090", "unknown-8080-172_17_0_3_80", "unknown-9090"])
    }

    @Test func aNameStaysWhileItsContainerDoes() throws {
        var registry = Registry()
        registry.register(try Self.web("0.0.0.0"))
        registry.register(try Self.api("::"))
        registry.remove(try Self.web("0.0.0.0").key)
        #expect(Self.names(registry) == ["unknown-8080-77b01c5e9a24"], "its twin leaving does not rename it (nor its listener)")

        // The shim restarted for the same container (resync, a new owner): same name.
        registry.register(try Self.api("::", owner: Owner(pid: 7, startTime: 8)))
        #expect(Self.names(registry) == ["unknown-8080-77b01c5e9a24"])
        // Its own twin joins its cluster.
        registry.register(try Self.api("0.0.0.0"))
        #expect(Self.names(registry) == ["unknown-8080-77b01c5e9a24", "unknown-8080-77b01c5e9a24"])
    }

    @Test func anotherContainerOnTheSameKeyIsNamedAfresh() throws {
        var registry = Registry()
        registry.register(try Self.web("0.0.0.0"))
        registry.register(try Self.api("::"))
        registry.register(try Self.web("::"))
        #expect(Self.names(registry) == ["unknown-8080", "unknown-8080"], "the :: port now serves web: it joins web's cluster")
    }

    @Test func differentLabelsNeverCollideInTheFirstPlace() throws {
        var registry = Registry()
        registry.register(try Fixture.registration(host: "0.0.0.0", 8080, container: "172.17.0.2", 80, service: "web"))
        registry.register(try Fixture.registration(host: "::", 8080, container: "172.17.0.3", 80, service: "api"))
        #expect(Self.names(registry) == ["web-8080", "api-8080"])
    }

    @Test func relabellingANamedApartTwinKeepsItApart() throws {
        var registration = try Self.api("::")
        registration.namedApart = true
        registration.metadata.service = "api"
        #expect(registration.serviceName == "api-8080-77b01c5e9a24")
    }

    @Test func theChoiceTravelsThroughTheWireAndTheStateFile() throws {
        var registry = Registry()
        registry.register(try Self.web("0.0.0.0"))
        registry.register(try Self.api("::"))
        let decoded = try StateDocument.decode(StateDocument.encode(registry, bootID: nil)).registrations
        #expect(decoded.map(\.serviceName) == ["unknown-8080", "unknown-8080-77b01c5e9a24"])
        #expect(Registry(decoded) == registry)
    }
}
