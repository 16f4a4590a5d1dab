#if canImport(Glibc)
import Glibc
#endif

/// Whether a file can be opened for appending (or created), judged without touching
/// it: Envoy refuses every listener whose access log file it cannot open, so the
/// server checks the path before it puts it into any listener.
public enum AppendableFile {
    /// Why `path` cannot be appended to by this process's user; nil when it can.
    public static func problem(at path: String) -> String? {
        var info = stat()
        if stat(path, &info) == 0 {
            if info.st_mode & S_IFMT == S_IFDIR { return "it is a directory" }
            return access(path, W_OK) == 0 ? nil : "it is not writable"
        }
        let slash = path.lastIndex(of: "/") ?? path.startIndex
        let directory = slash == path.startIndex ? "/" : String(path[..<slash])
        guard stat(directory, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else {
            return "the directory \(directory) does not exist"
        }
        return access(directory, W_OK) == 0 ? nil : "the directory \(directory) is not writable"
    }
}
