import Testing
#if canImport(Glibc)
import Glibc
#endif

enum TestFiles {
    /// The device and inode of the file at `path`, a symlink not followed: the same
    /// path names another file once it was replaced.
    static func identity(_ path: String) throws -> [UInt64] {
        var info = stat()
        guard lstat(path, &info) == 0 else { throw TestFailure("lstat \(path): \(String(cString: strerror(errno)))") }
        return [UInt64(info.st_dev), UInt64(info.st_ino)]
    }
}
