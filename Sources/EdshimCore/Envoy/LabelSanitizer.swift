/// Turns any label value into a name part Envoy accepts in resource names and
/// stat prefixes: ASCII letters, digits, `-` and `_` only.
///
/// `.` would split a stat name into levels and `:` is Envoy's tag separator, so
/// every other character (and every run of them) becomes one `_`. Long values are
/// cut and given a hash suffix, so two long labels that share a prefix stay apart.
public enum LabelSanitizer {
    /// The longest name part kept.
    public static let maximumLength = 64

    /// The sanitized value, or nil when nothing usable is left (empty, only symbols,
    /// only non-ASCII text).
    public static func sanitize(_ value: String) -> String? {
        var output: [UInt8] = []
        var pendingSeparator = false
        for byte in value.utf8 {
            if Self.isKept(byte) {
                if pendingSeparator, !output.isEmpty { output.append(UInt8(ascii: "_")) }
                pendingSeparator = false
                output.append(byte)
            } else {
                pendingSeparator = true
            }
        }
        while let first = output.first, first == UInt8(ascii: "-") || first == UInt8(ascii: "_") { output.removeFirst() }
        while let last = output.last, last == UInt8(ascii: "-") || last == UInt8(ascii: "_") { output.removeLast() }
        guard !output.isEmpty else { return nil }
        if output.count > maximumLength {
            let suffix = Array(Self.hexFNV1a32(value.utf8).utf8)
            output = Array(output.prefix(maximumLength - suffix.count - 1)) + [UInt8(ascii: "_")] + suffix
        }
        return String(decoding: output, as: UTF8.self)
    }

    private static func isKept(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"):
            true
        default:
            false
        }
    }

    /// FNV-1a, 32 bits, as 8 lowercase hex digits: short, stable across runs and builds.
    static func hexFNV1a32<Bytes: Sequence<UInt8>>(_ bytes: Bytes) -> String {
        var hash: UInt32 = 0x811C_9DC5
        for byte in bytes {
            hash ^= UInt32(byte)
            hash = hash &* 0x0100_0193
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 8 - hex.count) + hex
    }
}
