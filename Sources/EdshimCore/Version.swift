import CEdshimLinux

/// The edshim release.
public enum EdshimVersion {
    /// Semantic version of this build.
    public static let current = "0.1.0"
    /// The GNU build ID the linker wrote into this executable, in hex: two builds of
    /// one version tell apart by it (`file -L /proc/PID/exe` prints a running shim's,
    /// as BuildID[sha1]). Nil when the executable has none.
    public static let buildID: String? = {
        var bytes = [UInt8](repeating: 0, count: 64)
        let length = Int(edshim_build_id(&bytes, Int32(bytes.count)))
        guard length > 0 else { return nil }
        return bytes.prefix(length).map { String($0 >> 4, radix: 16) + String($0 & 0x0f, radix: 16) }.joined()
    }()
    /// The line `edshim version` and `-v` print.
    public static let banner = banner(buildID: buildID)

    /// The banner of a build whose ID is `buildID`.
    public static func banner(buildID: String?) -> String {
        "edshim version \(current) (\(buildID.map { "build-id \($0); " } ?? "")docker-proxy compatible userland proxy; Envoy v3 xDS)"
    }
}
