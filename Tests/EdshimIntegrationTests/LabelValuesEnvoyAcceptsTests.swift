import EdshimCore
import Foundation
import Testing

/// Whatever a container's labels say, the names edshim derives are names Envoy takes.
@Suite("Label values Envoy accepts")
struct LabelValuesEnvoyAcceptsTests {
    static let hostileValues: [String] = [
        #"quo"te's"#, "slash/es\\back", "spa ces", "new\nline\r\n", "tab\there", "dots.and:colons",
        "unicode-café-日本-🚀", "日本語だけ", "🚀", "", "   ", "-", "__", "%s%n{}[]", "\u{0}nul", "a=b;c,d",
        String(repeating: "x", count: 1000), String(repeating: "界", count: 1000),
    ]

    @Test("Envoy accepts the listeners and clusters of any label values, in both modes, with access log and tracing")
    func envoyAcceptsEveryName() async throws {
        var options = Testbed.Options()
        options.startServer = false
        try await withTestbed(options) { bed in
            var registrations: [Registration] = []
            for (index, value) in Self.hostileValues.enumerated() {
                let port = try Sockets.freePort()
                let key = RegistrationKey(proto: .tcp, host: SocketEndpoint(ip: .loopbackIPv4, port: port))
                registrations.append(Registration(
                    key: key,
                    container: SocketEndpoint(ip: .loopbackIPv4, port: 9),
                    owner: Owner(pid: 1, startTime: 1),
                    metadata: ContainerMetadata(service: value, environment: value),
                    mode: index.isMultiple(of: 2) ? .http : .tcp
                ))
            }
            // With every telemetry option on, so that their label-derived parts are checked too.
            let telemetry = Telemetry(accessLog: .file(bed.directory + "/access.log"), tracing: TracingCollector(parsing: "http://127.0.0.1:4318"))
            let configuration = EnvoyConfiguration(registrations: registrations, telemetry: telemetry)
            #expect(configuration.listeners.count == Self.hostileValues.count)
            try AtomicFile.write(try DiscoveryDocument.clusters(configuration.clusters), to: bed.xdsDirectory + "/cds.json")
            try await bed.eventually("Envoy loads every cluster") {
                try configuration.clusters.allSatisfy { try bed.clusters()[$0.name] != nil }
            }
            try AtomicFile.write(try DiscoveryDocument.listeners(configuration.listeners), to: bed.xdsDirectory + "/lds.json")
            try await bed.eventually("Envoy loads every listener") {
                try bed.listeners().count == configuration.listeners.count
            }
            let stats = try bed.admin("/stats")
            for cluster in configuration.clusters {
                #expect(stats.contains("cluster.\(cluster.name).upstream_cx_total"), "stat prefix for \(cluster.name)")
                #expect(cluster.name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") })
                #expect(cluster.name.count <= 2 * LabelSanitizer.maximumLength + 64, "bounded: two label parts, port and host address")
            }
        }
    }
}
