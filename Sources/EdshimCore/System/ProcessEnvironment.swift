#if canImport(Glibc)
import Glibc
#endif

/// This process's environment, read with getenv: the shim's path must not start Foundation.
public enum ProcessEnvironment {
    /// The value of `name`; nil when it is unset or empty, which edshim treats alike.
    public static func value(_ name: String) -> String? {
        guard let raw = getenv(name), raw.pointee != 0 else { return nil }
        return String(cString: raw)
    }
}
