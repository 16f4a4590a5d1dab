import Foundation

/// Programs of the system the tests run (`ip`, the Docker daemons): looked for on
/// PATH, then in the sbin and bin directories a test runner's PATH may lack.
enum SystemExecutables {
    /// PATH's directories, then those it lacks of /usr/local/sbin, /usr/local/bin,
    /// /usr/sbin, /usr/bin, /sbin and /bin.
    static let searchDirectories: [String] = {
        var directories = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
        for extra in ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"] where !directories.contains(extra) {
            directories.append(extra)
        }
        return directories
    }()

    /// `ip` (iproute2), or a failure saying where it was looked for.
    static func ip() throws -> String {
        guard let path = locate("ip") else {
            throw TestFailure("ip not found (looked in \(searchDirectories.joined(separator: ":"))): install iproute2")
        }
        return path
    }

    /// `setpriv` (util-linux), or a failure saying where it was looked for.
    static func setpriv() throws -> String {
        guard let path = locate("setpriv") else {
            throw TestFailure("setpriv not found (looked in \(searchDirectories.joined(separator: ":"))): install util-linux")
        }
        return path
    }

    /// `prlimit` (util-linux), or a failure saying where it was looked for.
    static func prlimit() throws -> String {
        guard let path = locate("prlimit") else {
            throw TestFailure("prlimit not found (looked in \(searchDirectories.joined(separator: ":"))): install util-linux")
        }
        return path
    }

    /// `python3`, or a failure saying where it was looked for.
    static func python3() throws -> String {
        guard let path = locate("python3") else {
            throw TestFailure("python3 not found (looked in \(searchDirectories.joined(separator: ":"))): install python3")
        }
        return path
    }

    /// The first executable `name` in `searchDirectories`, or nil.
    static func locate(_ name: String) -> String? {
        searchDirectories.lazy.map { $0 + "/" + name }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}
