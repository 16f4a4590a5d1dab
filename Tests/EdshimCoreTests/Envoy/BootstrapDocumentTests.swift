@testable import EdshimCore
import Testing

@Suite("BootstrapDocument")
struct BootstrapDocumentTests {
    static func document(xdsDirectory: String = "/var/lib/edshim/xds", nodeID: String = "edshim", nodeCluster: String = "edshim") throws -> BootstrapDocument {
        BootstrapDocument(
            xdsDirectory: xdsDirectory,
            admin: .tcp(try #require(SocketEndpoint(parsing: "127.0.0.1:9901"))),
            nodeID: nodeID,
            nodeCluster: nodeCluster
        )
    }

    /// The value after `key: ` on the first line that has it, read back as the JSON
    /// string YAML also takes it for.
    static func quotedValue(_ key: String, in yaml: String) throws -> String {
        let line = try #require(yaml.split(separator: "\n").first { $0.trimmingPrefixSpaces.hasPrefix(key + ": ") })
        let value = line.trimmingPrefixSpaces.dropFirst(key.count + 2)
        return try #require(try JSONParser.parse(Array(value.utf8)).stringValue)
    }

    @Test func golden() throws {
        try GoldenFile.verify(Fixture.bytes(try Self.document().yaml), named: "bootstrap.yaml")
    }

    @Test func goldenWithIPv6AdminAndCustomNode() throws {
        let document = BootstrapDocument(
            xdsDirectory: "/srv/envoy/xds/",
            admin: .tcp(try #require(SocketEndpoint(parsing: "[::1]:9902"))),
            nodeID: "host-17",
            nodeCluster: "edge",
            maximumConnections: 50_000
        )
        try GoldenFile.verify(Fixture.bytes(document.yaml), named: "bootstrap-ipv6-admin.yaml")
    }

    @Test func goldenWithAdminOnAUnixSocket() throws {
        let document = BootstrapDocument(xdsDirectory: "/var/lib/edshim/xds", admin: .unixSocket("/run/envoy-edshim/admin.sock"), nodeID: "edshim", nodeCluster: "edshim")
        try GoldenFile.verify(Fixture.bytes(document.yaml), named: "bootstrap-admin-socket.yaml")
    }

    /// contrib/envoy-edshim.service's: the admin API on a socket, its reads on 9901.
    @Test func goldenWithStatsAddress() throws {
        let document = BootstrapDocument(xdsDirectory: "/var/lib/edshim/xds", admin: .unixSocket("/run/envoy-edshim/admin.sock"), nodeID: "edshim", nodeCluster: "edshim", statsAddress: SocketEndpoint(parsing: "127.0.0.1:9901"))
        try GoldenFile.verify(Fixture.bytes(document.yaml), named: "bootstrap-stats-address.yaml")
    }

    @Test("admin addresses: HOST:PORT, or unix: and an absolute path that fits a socket address", arguments: [
        ("127.0.0.1:9901", "127.0.0.1:9901"),
        ("[::1]:9901", "[::1]:9901"),
        ("unix:/run/envoy-edshim/admin.sock", "unix:/run/envoy-edshim/admin.sock"),
        ("unix:admin.sock", nil),
        ("unix:", nil),
        ("unix:/" + String(repeating: "a", count: 107), nil),
        ("localhost:9901", nil),
        ("/run/admin.sock", nil),
    ] as [(String, String?)])
    func adminAddresses(text: String, parsed: String?) {
        #expect(BootstrapDocument.AdminAddress(parsing: text)?.description == parsed)
    }

    @Test func pathsJoinWithOneSlash() throws {
        #expect(try Self.document(xdsDirectory: "/x").listenerPath == "/x/lds.json")
        #expect(try Self.document(xdsDirectory: "/x/").clusterPath == "/x/cds.json")
    }

    @Test func quotesInPathsAndIDsAreJSONEscaped() throws {
        let document = try Self.document(xdsDirectory: #"/tmp/my "xds" dir\a"#, nodeID: #"node "one""#, nodeCluster: "cluster: {x}")
        let yaml = document.yaml
        #expect(yaml.contains(#"id: "node \"one\"""#))
        #expect(try Self.quotedValue("id", in: yaml) == #"node "one""#)
        #expect(try Self.quotedValue("cluster", in: yaml) == "cluster: {x}")
        #expect(try Self.quotedValue("path", in: yaml) == document.clusterPath)
        #expect(yaml.contains(#"path: "/tmp/my \"xds\" dir\\a/lds.json""#))
    }

    /// A path or id with a line break must not add lines (that would inject YAML).
    @Test func lineBreaksCannotInjectYAML() throws {
        let plain = try Self.document().yaml
        let hostile = try Self.document(xdsDirectory: "/tmp/x\nadmin: {}\n", nodeID: "a\nb", nodeCluster: "c\r\nd").yaml
        #expect(hostile.split(separator: "\n", omittingEmptySubsequences: false).count
            == plain.split(separator: "\n", omittingEmptySubsequences: false).count)
        #expect(!hostile.contains("\nadmin: {}"))
    }
}

extension Substring {
    fileprivate var trimmingPrefixSpaces: Substring { drop { $0 == " " } }
}
