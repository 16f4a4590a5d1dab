import CEdshimLinux
import EdshimCore
import Logging
import NIOCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The path of a Unix socket the server listens on: the shims' socket (`--socket`),
/// the admin endpoint's (`--admin-address unix:`). Checked at startup, before the
/// server writes anything. Bound under a temporary name beside it, made root's and
/// the socket group's there (a symlink put in its place never followed), then moved
/// into place without replacing what another process put there meanwhile: nobody
/// finds the socket at its path before its mode is set, and a server starting beside
/// another cannot take its socket away. Removed at stop only while it is still the
/// socket this server bound.
struct UnixSocketPath: CustomStringConvertible {
    typealias Server = NIOAsyncChannel<any Channel, Never>

    let path: String
    /// The option that named it, for messages: "--socket" or "--admin-address unix:".
    let option: String

    /// The file a path named when it was looked at, to know it again.
    struct Identity: Equatable {
        let device: UInt64
        let inode: UInt64

        init(_ info: stat) {
            device = UInt64(info.st_dev)
            inode = UInt64(info.st_ino)
        }
    }

    var description: String { option.hasSuffix(":") ? option + path : "\(option) \(path)" }

    /// Where the socket is bound before it is moved into place: beside it, so the
    /// move is a rename within one directory; this process's own, and of one length
    /// whatever its PID (`temporaryNameBytes` more than the directory), so that a path
    /// that fits once fits after every restart. (NIO removes the path it bound when
    /// the channel closes: this one, gone by then, and never what is at `path`.)
    let temporaryPath: String

    /// The bytes the temporary name adds to the directory: `/.edshim-`, the PID in
    /// five base-36 digits (pid_max is at most 2^22), `.`, a counter digit.
    static let temporaryNameBytes = 16

    /// The longest path SwiftNIO binds: 103 bytes, macOS's limit, which it applies on
    /// Linux too (where the kernel takes 107).
    static let longestBindablePath = 103

    init(path: String, option: String) {
        self.path = path
        self.option = option
        let pid = String(getpid(), radix: 36)
        let counter = String(Self.made.add(1, ordering: .relaxed).oldValue % 36, radix: 36)
        let directory = AtomicFile.parent(of: path) ?? (path.hasPrefix("/") ? "" : ".")
        temporaryPath = directory + "/.edshim-" + String(repeating: "0", count: max(0, 5 - pid.count)) + pid + "." + counter
    }

    private static let made = Atomic<Int>(0)

    /// Refuses a path something else holds: a socket something listens on, or a file
    /// that is not a socket (a symlink included). A socket nothing listens on, left
    /// by a server that was killed, is free: returned, for the bind to replace.
    @discardableResult
    func refuseIfTaken() throws -> Identity? {
        guard temporaryPath.utf8.count <= Self.longestBindablePath else {
            throw ServerError("\(self): the server binds it first as \(temporaryPath), \(temporaryPath.utf8.count) bytes long, and binds at most \(Self.longestBindablePath): choose a path whose directory is at most \(Self.longestBindablePath - Self.temporaryNameBytes) bytes long")
        }
        var info = stat()
        guard lstat(path, &info) == 0 else {
            guard errno == ENOENT else { throw ServerError("\(self): \(Self.lastError()); choose another path") }
            return nil
        }
        guard (info.st_mode & S_IFMT) == S_IFSOCK else {
            throw ServerError("\(self) exists and is not a socket: remove it or choose another \(option)")
        }
        switch Self.probe(path) {
        case .nobodyListens: return Identity(info)
        case .listening:
            throw ServerError("\(self): something already listens there (another edshim server?); stop it first, or choose another \(option)")
        case .cannotTell(let error):
            throw ServerError("\(self): cannot tell whether something listens there (connect: \(error)); remove it if no server uses it, or choose another \(option)")
        }
    }

    /// Binds the socket (`bind` is given the path to bind), makes it mode 0660, root's
    /// and the socket group's (a server not run as root: see `SocketGroup.give`), and
    /// moves it into place, replacing only a socket nothing listens on. Returns the
    /// listening channel, and the socket's identity for `remove(ifStill:)`.
    func bind(policy: PeerPolicy, logger: Logger, _ bind: (String) async throws -> Server) async throws -> (Server, Identity) {
        let stale = try refuseIfTaken()
        removeLeftovers(logger: logger)
        let temporary = temporaryPath
        unlink(temporary)
        let server: Server
        do {
            server = try await bind(temporary)
        } catch {
            throw ServerError("\(self): binding \(temporary): \(error); choose another path")
        }
        do {
            let identity = try Self.lockDown(temporary, policy: policy, logger: logger)
            try moveIntoPlace(temporary, replacing: stale)
            return (server, identity)
        } catch {
            unlink(temporary)
            try? await server.executeThenClose { _ in }
            throw error
        }
    }

    /// Renames the bound socket to `path`: over the stale socket found there, if it
    /// is still that one; else only if nothing took the path meanwhile (a stale socket
    /// removed in between, by the server that left it or by hand, included).
    private func moveIntoPlace(_ temporary: String, replacing stale: Identity?) throws {
        var info = stat()
        if let stale, lstat(path, &info) == 0 {
            guard Identity(info) == stale else { throw takenMeanwhile }
            guard rename(temporary, path) == 0 else {
                throw ServerError("\(self): cannot replace the socket a stopped server left there: \(Self.lastError())")
            }
            return
        }
        guard edshim_rename_without_replacing(temporary, path) == 0 else {
            if errno == EEXIST { throw takenMeanwhile }
            throw ServerError("\(self): cannot put the socket in place (from \(temporary)): \(Self.lastError())")
        }
    }

    private var takenMeanwhile: ServerError {
        ServerError("\(self): another process bound it while this server started; stop it, or choose another \(option)")
    }

    /// Makes the socket at `path` mode 0660, root's and the socket group's, through a
    /// handle on the file itself: were it swapped for a symlink, the target is left
    /// alone and the start refused.
    private static func lockDown(_ path: String, policy: PeerPolicy, logger: Logger) throws -> Identity {
        let handle = edshim_open_file_itself(path)
        guard handle >= 0 else { throw ServerError("cannot open the socket just bound at \(path): \(lastError())") }
        defer { close(handle) }
        var info = stat()
        guard fstat(handle, &info) == 0, (info.st_mode & S_IFMT) == S_IFSOCK else {
            throw ServerError("\(path) is no longer a socket just after this server bound it: something in its directory replaced it; give the socket a directory only root may write")
        }
        guard edshim_chmod_handle(handle, 0o660) == 0 else {
            throw ServerError("cannot set mode 0660 on \(path): \(lastError())")
        }
        try SocketGroup.give(path, policy: policy, logger: logger) { edshim_chown_handle(handle, $0, $1) }
        return Identity(info)
    }

    /// Removes the socket at stop, unless another file took its place since `bind`
    /// (a server started after this one stopped listening).
    /// Whether the socket this server bound (`identity`) is still at `path`.
    func stillHolds(_ identity: Identity) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0 && Identity(info) == identity
    }

    func remove(ifStill identity: Identity?) {
        var info = stat()
        guard let identity, lstat(path, &info) == 0, Identity(info) == identity else { return }
        unlink(path)
    }

    enum Probe {
        case listening, nobodyListens, cannotTell(String)
    }

    /// Whether something accepts connections at `path`, without waiting: a listener
    /// whose backlog is full (a hung server) still counts as one.
    static func probe(_ path: String) -> Probe {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { return .cannotTell(lastError()) }
        defer { close(fd) }
        guard UnixSocketAddress.with(path: path, { connect(fd, $0, $1) }) != 0 else { return .listening }
        switch errno {
        case EAGAIN: return .listening
        case ECONNREFUSED, ENOENT: return .nobodyListens
        default: return .cannotTell(lastError())
        }
    }

    private static func lastError() -> String { ErrorText.describe(errno) }
}
