#if canImport(Glibc)
import Glibc
#endif

/// Directories other users may write into. The server and Envoy run as root: where
/// another user can replace or plant a file, they could give Envoy a configuration of
/// their own (the xds directory), restore registrations of their choosing (the state
/// file's), or have Envoy append its access log to any file through a link.
public enum WritableByOthers {
    /// Why `directory` is not safe for root to write into, nil when it is: it may be
    /// written by other users (mode o+w), a directory above it may be without the
    /// sticky bit (/tmp's 1777 is safe: no one can rename what another user owns), or
    /// one of them belongs to a user other than root or this process's.
    /// A path that does not exist yet is judged by its closest existing directory.
    public static func refusal(directory: String) -> String? {
        guard var (path, isItself) = existingAncestor(of: directory) else { return nil }
        while true {
            var info = stat()
            guard stat(path, &info) == 0 else { return nil }
            let mode = info.st_mode & 0o7777
            let othersWrite = mode & 0o002 != 0
            let sticky = mode & 0o1000 != 0
            if othersWrite, isItself, sticky {
                return "\(path) may be written by any user (mode \(String(mode, radix: 8)), as /tmp): another user could plant a file or a link there first; choose a directory only root may write"
            }
            if othersWrite, isItself || !sticky {
                let fix = isItself ? "chmod o-w \(path)" : "chmod o-w \(path), or chmod +t \(path)"
                return "\(path) may be written by any user (mode \(String(mode, radix: 8))): another user could replace what is kept there; \(fix), or choose a directory only root may write"
            }
            if info.st_uid != 0, info.st_uid != geteuid() {
                return "\(path) belongs to uid \(info.st_uid), neither root nor this process's user: that user could replace what is kept there; chown root \(path), or choose another directory"
            }
            guard path != "/" else { return nil }
            path = AtomicFile.parent(of: path) ?? "/"
            isItself = false
        }
    }

    /// The real path of `directory` (`isItself`), or of its closest existing ancestor.
    private static func existingAncestor(of directory: String) -> (path: String, isItself: Bool)? {
        var path = directory
        while true {
            if let real = realpath(path, nil) {
                defer { free(real) }
                return (String(cString: real), path == directory)
            }
            guard path != "/", !path.isEmpty else { return nil }
            path = AtomicFile.parent(of: path) ?? "/"
        }
    }
}
