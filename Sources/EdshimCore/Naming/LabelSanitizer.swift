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
            let suffix = Array(FNV1a.hex32(value.utf8).utf8)
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
}
