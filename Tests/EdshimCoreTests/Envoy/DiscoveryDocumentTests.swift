@testable import EdshimCore
import EdshimTestSupport
import Foundation
import Testing

/// The encoded files are valid JSON `DiscoveryResponse`s and are deterministic.
@Suite("DiscoveryDocument")
struct DiscoveryDocumentTests {
    static func documents(_ configuration: EnvoyConfiguration) throws -> (lds: [UInt8], cds: [UInt8]) {
        (try DiscoveryDocument.listeners(configuration.listeners), try DiscoveryDocument.clusters(configuration.clusters))
    }

    static func object(_ bytes: [UInt8]) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
    }

    @Test(arguments: EnvoyScenario.allCases)
    func encodingTwiceGivesTheSameBytes(_ scenario: EnvoyScenario) throws {
        let first = try Self.documents(try scenario.configuration())
        let second = try Self.documents(try scenario.configuration())
        #expect(first.lds == second.lds)
        #expect(first.cds == second.cds)
    }

    @Test(arguments: EnvoyScenario.allCases)
    func inputOrderDoesNotMatter(_ scenario: EnvoyScenario) throws {
        let registrations = try scenario.registrations()
        let forward = try Self.documents(EnvoyConfiguration(registrations: registrations))
        let backward = try Self.documents(EnvoyConfiguration(registrations: registrations.reversed()))
        #expect(forward.lds == backward.lds)
        #expect(forward.cds == backward.cds)
    }

    /// A server keeps one cache per file across every change: each document it
    /// assembles from cached pieces is, byte for byte, the one encoded from scratch.
    @Test func aCacheKeptAcrossChangesGivesTheBytesOfAFreshEncoding() throws {
        var listenerCache = DiscoveryDocument.ResourceCache<EnvoyListener>()
        var clusterCache = DiscoveryDocument.ResourceCache<EnvoyCluster>()
        var registrations: [Registration] = []
        func check(_ step: String) throws {
            let configuration = EnvoyConfiguration(registrations: registrations)
            let fresh = try Self.documents(configuration)
            #expect(try DiscoveryDocument.listeners(configuration.listeners, reusing: &listenerCache) == fresh.lds, "lds after \(step)")
            #expect(try DiscoveryDocument.clusters(configuration.clusters, reusing: &clusterCache) == fresh.cds, "cds after \(step)")
        }
        try check("nothing")
        for port in UInt16(8000)..<8006 {
            registrations.append(try Fixture.registration(host: "0.0.0.0", port, container: "172.17.0.2", 80, service: "web", mode: .http))
            try check("adding \(port)")
        }
        registrations[2] = try Fixture.registration(host: "0.0.0.0", 8002, container: "172.17.0.9", 80, service: "api", mode: .tcp)
        try check("changing 8002")
        registrations.remove(at: 4)
        try check("removing 8004")
        registrations.removeAll()
        try check("removing all")
    }

    @Test func manyRegistrationsInAnyOrderGiveTheSameBytes() throws {
        var registrations: [Registration] = []
        for port in UInt16(8000)..<8040 {
            registrations.append(try Fixture.registration(host: "0.0.0.0", port, container: "172.17.0.\(port % 7 + 2)", 80, service: "svc\(port % 5)", mode: port % 2 == 0 ? .http : .tcp))
            registrations.append(try Fixture.registration(host: "::", port, container: "fd00::\(port % 7 + 2)", 80, service: "svc\(port % 5)", mode: port % 2 == 0 ? .http : .tcp))
        }
        let reference = try Self.documents(EnvoyConfiguration(registrations: registrations))
        var generator = SeededGenerator(seed: 7)
        for _ in 0..<10 {
            let shuffled = try Self.documents(EnvoyConfiguration(registrations: registrations.shuffled(using: &generator)))
            #expect(shuffled.lds == reference.lds)
            #expect(shuffled.cds == reference.cds)
        }
    }

    @Test(arguments: EnvoyScenario.allCases)
    func documentsAreValidDiscoveryResponses(_ scenario: EnvoyScenario) throws {
        let (lds, cds) = try Self.documents(try scenario.configuration())
        for (bytes, typeURL) in [(lds, EnvoyListener.typeURL), (cds, EnvoyCluster.typeURL)] {
            let document = try Self.object(bytes)
            let version = try #require(document["version_info"] as? String)
            #expect(!version.isEmpty)
            #expect(document["type_url"] as? String == typeURL)
            let resources = try #require(document["resources"] as? [[String: Any]])
            #expect(!resources.isEmpty)
            for resource in resources {
                #expect(resource["@type"] as? String == typeURL)
                #expect(resource["name"] is String)
            }
            #expect(bytes.last == UInt8(ascii: "\n"))
        }
    }

    /// The whole document, as `JSONEncoder` writes it in one piece.
    private struct WholeDocument<Message: EnvoyMessage>: Encodable {
        let resources: [Typed<Message>]
        let typeUrl: String
        let versionInfo: String
    }

    /// Compact, each resource on a line of its own (what `grep` finds a port by), and
    /// without those line breaks, byte for byte what `JSONEncoder` writes for the whole
    /// document: assembling it from cached pieces changes nothing else.
    @Test(arguments: EnvoyScenario.allCases)
    func eachResourceOnALineOfItsOwn(_ scenario: EnvoyScenario) throws {
        let configuration = try scenario.configuration()
        let lds = try DiscoveryDocument.listeners(configuration.listeners)
        let lines = String(decoding: lds, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.first == #"{"resources":["#)
        #expect(lines.last == "", "the file ends with a line break")
        let tail = try #require(lines.dropLast().last)
        #expect(tail.hasPrefix(#"],"type_url":"type.googleapis.com/envoy.config.listener.v3.Listener","version_info":""#))
        let middle = lines.dropFirst().dropLast(2)
        #expect(middle.count == configuration.listeners.count)
        for (line, listener) in zip(middle, configuration.listeners) {
            let object = try Self.object(Array((line.hasSuffix(",") ? line.dropLast() : line).utf8))
            #expect(object["name"] as? String == listener.name)
        }
        let version = try #require(Self.object(lds)["version_info"] as? String)
        let whole = try DiscoveryDocument.encoder().encode(WholeDocument(resources: configuration.listeners.map(Typed.init), typeUrl: EnvoyListener.typeURL, versionInfo: version))
        #expect(lds.filter { $0 != UInt8(ascii: "\n") } == Array(whole))
    }

    @Test func versionFollowsTheResources() throws {
        let one = try Self.documents(try EnvoyScenario.httpSinglePort.configuration())
        let again = try Self.documents(try EnvoyScenario.httpSinglePort.configuration())
        let other = try Self.documents(try EnvoyScenario.twoServices.configuration())
        let version = { (bytes: [UInt8]) throws -> String? in try Self.object(bytes)["version_info"] as? String }
        #expect(try version(one.lds) == version(again.lds))
        #expect(try version(one.lds) != version(other.lds))
        #expect(try version(one.cds) != version(other.cds))
    }

    /// An unchanged registration encodes to the same resource whatever else changes,
    /// so Envoy never drains a listener that did not change.
    @Test func anUntouchedListenerEncodesTheSameBesideOthers() throws {
        let nginx = try EnvoyScenario.httpSinglePort.registrations()
        let alone = try Self.object(try DiscoveryDocument.listeners(EnvoyConfiguration(registrations: nginx).listeners))
        let crowded = try Self.object(try DiscoveryDocument.listeners(try EnvoyScenario.twoServices.configuration().listeners))
        let aloneResources = try #require(alone["resources"] as? [[String: Any]])
        let crowdedResources = try #require(crowded["resources"] as? [[String: Any]])
        let target = try #require(aloneResources.first)
        let match = try #require(crowdedResources.first { $0["name"] as? String == target["name"] as? String })
        let canonical = { (object: [String: Any]) throws -> Data in try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) }
        #expect(try canonical(target) == canonical(match))
        #expect(try canonical(target) != canonical(try #require(crowdedResources.last)), "the comparison can tell listeners apart")
    }

    @Test func udpRegistrationsAreNotEnvoys() throws {
        let configuration = EnvoyConfiguration(registrations: [
            try Fixture.registration(.udp, host: "0.0.0.0", 53, container: "172.17.0.2", 53, service: "dns"),
        ])
        #expect(configuration == .empty)
    }
}
