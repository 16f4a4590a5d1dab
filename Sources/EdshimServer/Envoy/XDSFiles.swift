import EdshimCore
#if canImport(Glibc)
import Glibc
#endif

/// The server reading back its own xds files: what Envoy was last given, at start
/// (`XDSPublisher.start`, `LostStateRecovery`) and before a write that may change
/// nothing.
enum XDSFiles {
    /// The server's own look at a file of the directory: opened for writing too, so
    /// that the publisher's `FileReadWatcher` does not take it for Envoy reading it
    /// (it counts files closed after reading only).
    static func readOwnFile(_ path: String) -> [UInt8]? {
        SystemFile.read(path, access: O_RDWR) ?? SystemFile.read(path)
    }

    /// How deep the server's own xds files nest, at most (a listener's HTTP filters
    /// go deeper than the protocol's 16).
    private static let xdsFileDepth = 64

    /// The names of the listeners in `directory`'s `lds.json`, what Envoy was last
    /// given; nil when it cannot be read or is not a listener file.
    static func listenerNames(in directory: String) -> Set<String>? {
        resources(inFile: directory + "/" + DiscoveryDocument.listenerFileName).map { Set($0.map(\.name)) }
    }

    /// The resources of an xds file (`cds.json`'s clusters, `lds.json`'s listeners),
    /// each one's name and JSON; nil when it cannot be read or is not one.
    static func resources(inFile path: String) -> [(name: String, json: [UInt8])]? {
        guard let bytes = readOwnFile(path),
              let resources = (try? JSONParser.parse(bytes, maximumDepth: xdsFileDepth))?.objectValue?["resources"]?.arrayValue else { return nil }
        return resources.compactMap { resource in
            resource.objectValue?["name"]?.stringValue.map { ($0, resource.serialized) }
        }
    }
}
