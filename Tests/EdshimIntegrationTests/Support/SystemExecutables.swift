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
    static func ip() throws -> String { try required("ip", package: "iproute2") }

    /// `setpriv` (util-linux), or a failure saying where it was looked for.
    static func setpriv() throws -> String { try required("setpriv", package: "util-linux") }

    /// `prlimit` (util-linux), or a failure saying where it was looked for.
    static func prlimit() throws -> String { try required("prlimit", package: "util-linux") }

    /// `python3`, or a failure saying where it was looked for.
    static func python3() throws -> String { try required("python3", package: "python3") }

    /// `name`, or a failure saying where it was looked for and which Debian package
    /// has it.
    static func required(_ name: String, package: String) throws -> String {
        guard let path = locate(name) else {
            throw TestFailure("\(name) not found (looked in \(searchDirectories.joined(separator: ":"))): install \(package)")
        }
        return path
    }

    /// The first executable `name` in `searchDirectories`, or nil.
    static func locate(_ name: String) -> String? {
        searchDirectories.lazy.map { $0 + "/" + name }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}
