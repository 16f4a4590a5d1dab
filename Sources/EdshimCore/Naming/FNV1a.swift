/// FNV-1a hashes as fixed-width lowercase hex: short, and stable across runs, builds
/// and machines (unlike Swift's `Hasher`), so names and versions derived from them are too.
enum FNV1a {
    /// 32 bits, 8 hex digits.
    static func hex32<Bytes: Sequence<UInt8>>(_ bytes: Bytes) -> String {
        hex(bytes, basis: UInt32(0x811C_9DC5), prime: 0x0100_0193)
    }

    /// 64 bits, 16 hex digits.
    static func hex64<Bytes: Sequence<UInt8>>(_ bytes: Bytes) -> String {
        hex(bytes, basis: UInt64(0xCBF2_9CE4_8422_2325), prime: 0x0000_0100_0000_01B3)
    }

    private static func hex<Bytes: Sequence<UInt8>, Word: FixedWidthInteger & UnsignedInteger>(_ bytes: Bytes, basis: Word, prime: Word) -> String {
        var hash = basis
        for byte in bytes {
            hash ^= Word(byte)
            hash = hash &* prime
        }
        let digits = String(hash, radix: 16)
        return String(repeating: "0", count: Word.bitWidth / 4 - digits.count) + digits
    }
}
