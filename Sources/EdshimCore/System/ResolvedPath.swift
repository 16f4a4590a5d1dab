#if canImport(Glibc)
import Glibc
#endif

/// An absolute path as the kernel finds it, so that two spellings of one file compare
/// equal: the part that exists resolved (symlinks, `.`, `..`), the rest, not there
/// yet, with `.`, `..` and doubled slashes taken out as written.
public enum ResolvedPath {
    /// `/var/run/edshim/./admin.sock` → `/run/edshim/admin.sock`, whether
    /// `/var/run/edshim` exists yet or only `/var/run` (a symlink to `/run`) does.
    public static func of(_ path: String) -> String {
        var existing = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        var rest: [String] = []
        while true {
            if let real = realpath("/" + existing.joined(separator: "/"), nil) {
                defer { free(real) }
                return join(String(cString: real), normalized(rest))
            }
            guard let last = existing.popLast() else { return join("/", normalized(rest)) }
            rest.insert(last, at: 0)
        }
    }

    /// The components with `.` dropped and each `..` taking the one before it.
    private static func normalized(_ components: [String]) -> [String] {
        var kept: [String] = []
        for component in components where component != "." {
            if component == ".." { _ = kept.popLast() } else { kept.append(component) }
        }
        return kept
    }

    private static func join(_ directory: String, _ components: [String]) -> String {
        guard !components.isEmpty else { return directory }
        return (directory == "/" ? "" : directory) + "/" + components.joined(separator: "/")
    }
}
