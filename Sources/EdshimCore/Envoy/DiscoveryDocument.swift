#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Encodes resources as the v3 `DiscoveryResponse` JSON files Envoy's filesystem
/// subscriptions read (`lds.json`, `cds.json`).
///
/// Deterministic: keys sorted, resources in name order, and `version_info` a hash
/// of the resources, so the same resources always give the same bytes.
///
/// Compact, each resource on a line of its own (`jq . lds.json` indents it; `grep`
/// finds a port's listener): Envoy reads every listener again at each change, and
/// takes about a quarter less time over a compact file than over an indented one,
/// less than half its size (docs/PERFORMANCE.md). Each resource is encoded on its own
/// and the document is assembled from those pieces, so that a `ResourceCache` can keep
/// them between documents: a change to one port encodes one listener again, not every
/// listener of the host. Without its line breaks, the document is what `JSONEncoder`
/// writes for it whole (the golden files hold the bytes).
public enum DiscoveryDocument {
    /// The listener file's name in the xds directory.
    public static let listenerFileName = "lds.json"
    /// The cluster file's name in the xds directory.
    public static let clusterFileName = "cds.json"

    /// `lds.json` for the listeners.
    public static func listeners(_ listeners: [EnvoyListener]) throws -> [UInt8] {
        var cache = ResourceCache<EnvoyListener>()
        return try self.listeners(listeners, reusing: &cache)
    }

    /// `lds.json` for the listeners, reusing what `cache` holds of earlier documents.
    public static func listeners(_ listeners: [EnvoyListener], reusing cache: inout ResourceCache<EnvoyListener>) throws -> [UInt8] {
        try document(typeURL: EnvoyListener.typeURL, resources: listeners, cache: &cache)
    }

    /// `cds.json` for the clusters.
    public static func clusters(_ clusters: [EnvoyCluster]) throws -> [UInt8] {
        var cache = ResourceCache<EnvoyCluster>()
        return try self.clusters(clusters, reusing: &cache)
    }

    /// `cds.json` for the clusters, reusing what `cache` holds of earlier documents.
    public static func clusters(_ clusters: [EnvoyCluster], reusing cache: inout ResourceCache<EnvoyCluster>) throws -> [UInt8] {
        try document(typeURL: EnvoyCluster.typeURL, resources: clusters, cache: &cache)
    }

    /// `cds.json` for the clusters, then `kept`: clusters of an earlier file as read
    /// from it (each one's JSON), for a step that must not take them away yet.
    public static func clusters(_ clusters: [EnvoyCluster], keeping kept: [[UInt8]]) throws -> [UInt8] {
        var cache = ResourceCache<EnvoyCluster>()
        return assemble(typeURL: EnvoyCluster.typeURL, pieces: try cache.encode(clusters, with: encoder()) + kept)
    }

    /// The JSON of each resource of the last document, by resource.
    public struct ResourceCache<Message: EnvoyMessage>: Sendable {
        private var encoded: [Message: [UInt8]] = [:]

        /// An empty cache.
        public init() {}

        /// Each resource's JSON (`JSONEncoder`, compact: one line): from the
        /// cache when the same resource was in the last document. Keeps only these.
        mutating func encode(_ resources: [Message], with encoder: JSONEncoder) throws -> [[UInt8]] {
            var kept: [Message: [UInt8]] = [:]
            kept.reserveCapacity(resources.count)
            let pieces = try resources.map { resource in
                let bytes = try encoded[resource] ?? Array(encoder.encode(Typed(resource)))
                kept[resource] = bytes
                return bytes
            }
            encoded = kept
            return pieces
        }
    }

    static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .custom { path in
            FieldName(stringValue: EnvoyFieldNames.json(path.last?.stringValue ?? ""))
        }
        return encoder
    }

    private struct FieldName: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    private static func document<Message: EnvoyMessage>(typeURL: String, resources: [Message], cache: inout ResourceCache<Message>) throws -> [UInt8] {
        assemble(typeURL: typeURL, pieces: try cache.encode(resources, with: encoder()))
    }

    private static func assemble(typeURL: String, pieces: [[UInt8]]) -> [UInt8] {
        let resources = array(of: pieces)
        // The version hashes the resources as the document holds them.
        let version = FNV1a.hex64(resources)
        var document = Array(#"{"resources":"#.utf8)
        document.reserveCapacity(resources.count + 160)
        document += resources
        document += Array(#","type_url":"\#(typeURL)","version_info":"\#(version)"}"#.utf8)
        document.append(UInt8(ascii: "\n"))
        return document
    }

    /// A JSON array of `pieces`, each on a line of its own: `[` ends the line before
    /// the first, and `]` starts the line after the last (an empty array too). The
    /// pieces hold no line break (the encoder escapes one in a string).
    static func array(of pieces: [[UInt8]]) -> [UInt8] {
        let newline = UInt8(ascii: "\n")
        var bytes: [UInt8] = [UInt8(ascii: "["), newline]
        bytes.reserveCapacity(pieces.reduce(4) { $0 + $1.count + 2 })
        for (index, piece) in pieces.enumerated() {
            if index > 0 { bytes += [UInt8(ascii: ","), newline] }
            bytes += piece
        }
        if !pieces.isEmpty { bytes.append(newline) }
        bytes.append(UInt8(ascii: "]"))
        return bytes
    }
}
