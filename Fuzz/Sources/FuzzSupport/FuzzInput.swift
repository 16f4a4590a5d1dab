/// Turns libFuzzer's bytes into the shapes the fuzzed functions take.
public enum FuzzInput {
    /// Copies libFuzzer's buffer (which may be empty, with a null pointer).
    public static func bytes(_ data: UnsafePointer<UInt8>?, _ count: Int) -> [UInt8] {
        guard let data, count > 0 else { return [] }
        return Array(UnsafeBufferPointer(start: data, count: count))
    }

    /// Fields separated by NUL or newline bytes, empty ones kept: one argument per
    /// line in a corpus file. (A real argv cannot hold a NUL, so nothing is lost.)
    public static func arguments(_ bytes: [UInt8]) -> [String] {
        fields(bytes) { $0 == 0 || $0 == UInt8(ascii: "\n") }
    }

    /// Fields separated by NUL bytes, empty ones kept.
    public static func fields(_ bytes: [UInt8]) -> [String] {
        fields(bytes) { $0 == 0 }
    }

    /// Invalid UTF-8 becomes U+FFFD, as it does in `CommandLine.arguments`.
    public static func text(_ bytes: some Collection<UInt8>) -> String {
        String(decoding: bytes, as: UTF8.self)
    }

    private static func fields(_ bytes: [UInt8], separatedBy isSeparator: (UInt8) -> Bool) -> [String] {
        bytes.split(omittingEmptySubsequences: false, whereSeparator: isSeparator).map(text)
    }
}
