#if canImport(Glibc)
import Glibc
#endif

/// This process's environment, read without Foundation (the shim links only what it needs).
public enum ProcessEnvironment {
    /// The value of `name`; nil when it is unset or empty, which edshim treats alike.
    public static func value(_ name: String) -> String? {
        guard let raw = getenv(name), raw.pointee != 0 else { return nil }
        return String(cString: raw)
    }
}
