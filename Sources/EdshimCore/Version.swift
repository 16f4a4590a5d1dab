/// The edshim release.
public enum EdshimVersion {
    /// Semantic version of this build.
    public static let current = "0.1.0"
    /// The line `edshim version` and `-v` print.
    public static let banner = "edshim version \(current) (docker-proxy compatible userland proxy; Envoy v3 xDS)"
}
