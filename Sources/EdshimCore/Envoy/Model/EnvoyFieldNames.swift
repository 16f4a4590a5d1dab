/// Envoy's JSON field names from the models' Swift names: `lbEndpoints` is
/// `lb_endpoints`, `HTTPFilter` is `http_filter` (what JSONEncoder's
/// `convertToSnakeCase` writes). A key with a dot is an extension's name, a map key
/// Envoy looks up as written (`envoy.extensions.upstreams.http.v3.HttpProtocolOptions`),
/// and is kept as it is.
enum EnvoyFieldNames {
    /// The JSON name of the Swift property or key `name`.
    static func json(_ name: String) -> String {
        guard !name.utf8.contains(UInt8(ascii: ".")) else { return name }
        let bytes = Array(name.utf8)
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count + 4)
        for (index, byte) in bytes.enumerated() {
            if isUpper(byte), index > 0 {
                // A word starts at a capital after a lower-case letter or digit, and at
                // the last capital of a run followed by a lower-case letter (HTTPFilter).
                let previous = bytes[index - 1]
                let nextIsLower = index + 1 < bytes.count && isLower(bytes[index + 1])
                if !isUpper(previous) || nextIsLower { output.append(UInt8(ascii: "_")) }
            }
            output.append(isUpper(byte) ? byte + 32 : byte)
        }
        return String(decoding: output, as: UTF8.self)
    }

    private static func isUpper(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") }
    private static func isLower(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z") }
}
