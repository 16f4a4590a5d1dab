@testable import EdshimCore
import Testing

/// `lds.json` and `cds.json` pinned byte for byte (see `GoldenFile` for updating).
@Suite("Envoy encoder golden files")
struct EnvoyGoldenTests {
    @Test(arguments: EnvoyScenario.allCases)
    func listeners(_ scenario: EnvoyScenario) throws {
        let configuration = try scenario.configuration()
        try GoldenFile.verify(try DiscoveryDocument.listeners(configuration.listeners), named: "\(scenario.rawValue).lds.json")
    }

    @Test(arguments: EnvoyScenario.allCases)
    func clusters(_ scenario: EnvoyScenario) throws {
        let configuration = try scenario.configuration()
        try GoldenFile.verify(try DiscoveryDocument.clusters(configuration.clusters), named: "\(scenario.rawValue).cds.json")
    }

    @Test func emptyConfiguration() throws {
        try GoldenFile.verify(try DiscoveryDocument.listeners(EnvoyConfiguration.empty.listeners), named: "empty.lds.json")
        try GoldenFile.verify(try DiscoveryDocument.clusters(EnvoyConfiguration.empty.clusters), named: "empty.cds.json")
    }

    /// The resource counts the goldens encode, stated independently of the files.
    @Test(arguments: [
        (EnvoyScenario.httpSinglePort, 1, 1), (.tcpMode, 1, 1), (.dualStackTwins, 2, 1), (.dualStackContainer, 2, 1), (.twoServices, 2, 2),
        (.accessLogFile, 2, 2), (.accessLogOff, 2, 2), (.tracing, 2, 3),
    ])
    func resourceCounts(_ scenario: EnvoyScenario, _ listeners: Int, _ clusters: Int) throws {
        let configuration = try scenario.configuration()
        #expect(configuration.listeners.count == listeners)
        #expect(configuration.clusters.count == clusters)
        #expect(configuration.missingClusters.isEmpty)
    }
}
