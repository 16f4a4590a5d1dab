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
public enum DiscoveryDocument {
    /// The listener file's name in the xds directory.
    public static let listenerFileName = "lds.json"
    /// The cluster file's name in the xds directory.
    public static let clusterFileName = "cds.json"

    /// `lds.json` for the listeners.
    public static func listeners(_ listeners: [EnvoyListener]) throws -> [UInt8] {
        try document(typeURL: EnvoyListener.typeURL, resources: listeners.map(Typed.init))
    }

    /// `cds.json` for the clusters.
    public static func clusters(_ clusters: [EnvoyCluster]) throws -> [UInt8] {
        try document(typeURL: EnvoyCluster.typeURL, resources: clusters.map(Typed.init))
    }

    private struct Response<Message: EnvoyMessage>: Encodable {
        var versionInfo: String
        var typeUrl: String
        var resources: [Typed<Message>]
    }

    static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return encoder
    }

    private static func document<Message: EnvoyMessage>(typeURL: String, resources: [Typed<Message>]) throws -> [UInt8] {
        let encoder = encoder()
        let version = FNV1a.hex64(try encoder.encode(resources))
        let data = try encoder.encode(Response(versionInfo: version, typeUrl: typeURL, resources: resources))
        return Array(data) + [UInt8(ascii: "\n")]
    }
}
