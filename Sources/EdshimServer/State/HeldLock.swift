import EdshimCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// An exclusive `flock` on an open file or directory, held until the lock is released
/// with the process (or deinit): how a server claims what only one server may use.
/// Taken again on what the path names now when the locked file or directory was
/// deleted or replaced (`relockIfLost`): a lock on a deleted file keeps no other
/// server out.
final class HeldLock: Sendable {
    private let path: String
    private let flags: Int32
    private let name: String
    private let taken: String
    private let held: Mutex<(descriptor: Int32, identity: FileIdentity?)>

    /// Opens `path` with `flags` (O_CLOEXEC added) and locks it without waiting.
    /// `taken` is thrown's text when another process holds the lock; `name` starts
    /// every message (the flag and path the operator gave).
    init(_ path: String, flags: Int32, name: String, taken: String) throws(ServerError) {
        self.path = path
        self.flags = flags
        self.name = name
        self.taken = taken
        held = Mutex(try Self.lock(path, flags: flags, name: name, taken: taken))
    }

    /// The locked file or directory's device and inode: what the lock holds, which
    /// the path may no longer name.
    var identity: FileIdentity? { held.withLock { $0.identity } }

    /// Locks what `path` names now, when it is no longer what was locked (deleted, or
    /// replaced: `rm -rf /var/lib/edshim`); returns whether it had to. Throws when it
    /// cannot, another server holding the new one included; the old lock is then kept.
    func relockIfLost() throws(ServerError) -> Bool {
        try held.withLock { (held: inout (descriptor: Int32, identity: FileIdentity?)) throws(ServerError) -> Bool in
            guard FileIdentity(path) != held.identity else { return false }
            let new = try Self.lock(path, flags: flags, name: name, taken: taken)
            close(held.descriptor)
            held = new
            return true
        }
    }

    private static func lock(_ path: String, flags: Int32, name: String, taken: String) throws(ServerError) -> (descriptor: Int32, identity: FileIdentity?) {
        var descriptor = open(path, flags | O_CLOEXEC, 0o600)
        if descriptor < 0, errno == EROFS, flags & O_CREAT != 0 {
            // A file system remounted read-only (ext4's errors=remount-ro): a lock file
            // already there locks as well opened for reading, and the server starts;
            // the writes it cannot make are retried, logged and shown on /healthz.
            descriptor = open(path, O_RDONLY | O_CLOEXEC)
            if descriptor < 0 { errno = errno == ENOENT ? EROFS : errno }
        }
        guard descriptor >= 0 else {
            let code = errno
            let reason = ErrorText.describe(code) + (code == EROFS ? " (it cannot be created there: remount the file system read-write, or choose a path on another)" : "")
                + (code == ELOOP ? " (a symbolic link, which is not followed here: remove it)" : "")
            throw ServerError(name.hasSuffix(path) ? "\(name): \(reason)" : "\(name): opening \(path): \(reason)")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let reason = errno == EWOULDBLOCK ? taken : ErrorText.describe(errno)
            close(descriptor)
            throw ServerError("\(name): \(reason)")
        }
        return (descriptor, FileIdentity(descriptor: descriptor))
    }

    deinit { held.withLock { _ = close($0.descriptor) } }
}
