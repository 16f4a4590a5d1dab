import EdshimCore
import FuzzSupport

/// A fuzz input read as a container: NUL-separated fields taken in pairs as label
/// name and value. A one-byte name picks one of the six labels edshim reads (byte
/// modulo 6), so the fuzzer reaches them without spelling them; longer names are
/// used as written. The last field, when it is `HOST:PORT`, is the published port.
struct LabelInput {
    static let knownNames = [
        ContainerLabels.service, ContainerLabels.environment, ContainerLabels.mode,
        ContainerLabels.legacyService, ContainerLabels.legacyEnvironment, ContainerLabels.legacyMode,
    ]
    static let defaultHost = SocketEndpoint(ip: .anyIPv4, port: 8080)

    var fields: [String]
    var labels: [String: String] = [:]
    var host: SocketEndpoint

    init(_ bytes: [UInt8]) {
        fields = FuzzInput.fields(bytes)
        var index = 0
        while index + 1 < fields.count {
            let name = fields[index]
            let known = name.utf8.count == 1 ? name.utf8.first.map { Self.knownNames[Int($0) % Self.knownNames.count] } : nil
            labels[known ?? name] = fields[index + 1]
            index += 2
        }
        host = fields.last.flatMap(SocketEndpoint.init(parsing:)) ?? Self.defaultHost
    }
}
