#if canImport(Glibc)
import Glibc
#endif

/// Finding and recognising running shims in `/proc`: what `edshim resync` registers,
/// and what the server checks before it accepts a registration made on a shim's behalf.
///
/// A shim names itself `edshim` (its `comm`) when it starts, whatever name dockerd
/// ran it by (`edshim`, a `docker-proxy` symlink, `edshim shim`), and its command line
/// holds its docker-proxy flags.
public enum ShimProcesses {
    /// The process name every shim gives itself.
    public static let processName = "edshim"

    /// A running shim: its process and the port it publishes.
    public struct Shim: Equatable, Sendable {
        /// The process.
        public var owner: Owner
        /// What it was started with.
        public var arguments: ShimArguments
        /// The server socket it registers with (its `EDSHIM_SOCKET`, else the default).
        public var socketPath: String
        /// False when its environment cannot be read (another user's process, to a
        /// caller without root): `socketPath` is then only the default.
        public var socketPathKnown: Bool

        /// Creates a shim directly (tests).
        public init(owner: Owner, arguments: ShimArguments, socketPath: String, socketPathKnown: Bool = true) {
            self.owner = owner
            self.arguments = arguments
            self.socketPath = socketPath
            self.socketPathKnown = socketPathKnown
        }

        /// Whether the shim registers with the server socket at `path`: the same path,
        /// or the same socket reached another way (through a symlink, such as
        /// /var/run → /run, or relative to the shim's or the caller's directory).
        /// False when its socket cannot be known.
        public func registers(with path: String, root: String = "/proc") -> Bool {
            guard socketPathKnown else { return false }
            if socketPath == path { return true }
            let ownPath = socketPath.hasPrefix("/") ? socketPath : "\(root)/\(owner.pid)/cwd/\(socketPath)"
            var own = stat()
            var other = stat()
            guard stat(ownPath, &own) == 0, stat(path, &other) == 0 else { return false }
            return own.st_dev == other.st_dev && own.st_ino == other.st_ino
        }
    }

    /// The arguments of a shim with command line `argv` and process name `comm`, or
    /// nil when it is not an edshim shim.
    public static func recognise(comm: String, argv: [String]) -> ShimArguments? {
        guard comm == processName, let flags = ModeSelection.shimArguments(argv),
              case .run(let arguments)? = try? ShimInvocation.parse(flags) else { return nil }
        return arguments
    }

    /// The shim with process id `pid`, or nil when that process is not a shim.
    public static func shim(pid: Int32, root: String = "/proc") -> Shim? {
        // The name first: a command line can be megabytes, and only a shim's is read.
        guard let commBytes = SystemFile.read("\(root)/\(pid)/comm"),
              case let comm = String(decoding: commBytes, as: UTF8.self).trimmingASCIIWhitespace(), comm == processName,
              let argv = ProcessTable.commandLine(of: pid, root: root),
              let arguments = recognise(comm: comm, argv: argv),
              let owner = ProcessTable.owner(of: pid, root: root) else { return nil }
        let environment = SystemFile.read("\(root)/\(pid)/environ")
        let socket = environment.flatMap { value(EdshimDefaults.socketEnvironmentVariable, in: $0) }
        return Shim(owner: owner, arguments: arguments, socketPath: socket.flatMap { $0.isEmpty ? nil : $0 } ?? EdshimDefaults.socketPath, socketPathKnown: environment != nil)
    }

    /// The running TCP shims that register with the server socket at `path`;
    /// `orUnknown`: also those whose socket cannot be read (other users' shims, to a
    /// caller without root), which may be that server's. From `shims`, else `all()`.
    public static func tcpShims(registeringWith path: String, orUnknown: Bool = false, among shims: [Shim]? = nil) -> [Shim] {
        (shims ?? all()).filter { shim in
            shim.arguments.proto == .tcp && (shim.registers(with: path) || (orUnknown && !shim.socketPathKnown))
        }
    }

    /// How the executable of a process compares with this process's own.
    public enum ExecutableCheck: Equatable, Sendable {
        /// The same file, or the same path (an edshim upgraded since the process
        /// started: its old file shows as deleted).
        case same
        /// Another file: the path it runs, and this process's.
        case other(String, own: String)
        /// `/proc/PID/exe` (or this process's own) cannot be read.
        case unreadable
    }

    /// Whether process `pid` runs the edshim this process runs. Only an edshim shim
    /// sets its process name to `edshim` honestly: any process can take the name (a
    /// symlink named edshim to another program, setuid ones included) and any flags.
    public static func executableCheck(of pid: Int32, root: String = "/proc") -> ExecutableCheck {
        guard let theirs = ProcessTable.executable(of: pid, root: root), let own = ProcessTable.ownExecutable(root: root) else {
            return .unreadable
        }
        let sameFile = theirs.device == own.device && theirs.inode == own.inode
        return sameFile || theirs.path == own.path ? .same : .other(theirs.path, own: own.path)
    }

    /// Whether process `pid` runs an edshim since replaced at this process's own path
    /// (an upgrade installed another file there): it keeps the old release's code.
    public static func runsReplacedBinary(_ pid: Int32, root: String = "/proc") -> Bool {
        guard let theirs = ProcessTable.executable(of: pid, root: root), let own = ProcessTable.ownExecutable(root: root) else { return false }
        return theirs.path == own.path && (theirs.device, theirs.inode) != (own.device, own.inode)
    }

    /// A variable from a process's environment (`/proc/PID/environ`, as it was at exec).
    public static func environmentValue(_ name: String, of pid: Int32, root: String = "/proc") -> String? {
        SystemFile.read("\(root)/\(pid)/environ").flatMap { value(name, in: $0) }
    }

    /// A variable from the contents of an `environ` file.
    private static func value(_ name: String, in environ: [UInt8]) -> String? {
        let prefix = Array((name + "=").utf8)
        for entry in environ.split(separator: 0) where entry.starts(with: prefix) {
            return String(decoding: entry.dropFirst(prefix.count), as: UTF8.self)
        }
        return nil
    }

    /// The inode of the socket the shim `pid` itself listens on at `host`, when it
    /// serves its port itself (Envoy or the server was not there): a registration made
    /// on its behalf names it, as the shim's own would, so that the server does not
    /// take it for another process holding the port.
    public static func ownListeningSocket(of pid: Int32, on host: SocketEndpoint, root: String = "/proc", listening: [ListeningSocket]? = nil) -> UInt64? {
        let held = socketInodes(of: pid, root: root)
        guard !held.isEmpty else { return nil }
        return (listening ?? ListenTable.read(onPorts: [host.port])).first { $0.endpoint == host && held.contains($0.inode) }?.inode
    }

    /// The shim publishing `key` that holds the socket `inode`, when that process runs
    /// this process's edshim: how a UDP shim carrying its port through a dockerd
    /// restart tells the next dockerd's shim, bound beside it, from another program
    /// that joined the port with SO_REUSEPORT. Reads every process's descriptors.
    public static func shim(holding inode: UInt64, publishing key: RegistrationKey, root: String = "/proc") -> Shim? {
        for pid in entryNames(in: root).compactMap(Int32.init) where pid != getpid() {
            guard socketInodes(of: pid, root: root).contains(inode) else { continue }
            guard let shim = shim(pid: pid, root: root), shim.arguments.key == key,
                  executableCheck(of: pid, root: root) == .same else { return nil }
            return shim
        }
        return nil
    }

    /// Whether the shim serves its port itself (it listens on it, among `listening`:
    /// the host's listening sockets, read once for many shims); nil when its
    /// descriptors cannot be read (another user's, to a caller without root).
    public static func servesItself(_ shim: Shim, listening: [ListeningSocket], root: String = "/proc") -> Bool? {
        guard let directory = opendir("\(root)/\(shim.owner.pid)/fd") else { return nil }
        closedir(directory)
        return ownListeningSocket(of: shim.owner.pid, on: shim.arguments.host, root: root, listening: listening) != nil
    }

    /// The inodes of the sockets open in process `pid` (its `/proc/PID/fd` links,
    /// `socket:[INODE]`).
    static func socketInodes(of pid: Int32, root: String = "/proc") -> Set<UInt64> {
        var inodes: Set<UInt64> = []
        var target = [CChar](repeating: 0, count: 64)
        for name in entryNames(in: "\(root)/\(pid)/fd") {
            let length = readlink("\(root)/\(pid)/fd/\(name)", &target, target.count - 1)
            guard length > 0 else { continue }
            let link = String(decoding: target[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            guard link.hasPrefix("socket:["), link.hasSuffix("]"), let inode = UInt64(link.dropFirst(8).dropLast()) else { continue }
            inodes.insert(inode)
        }
        return inodes
    }

    /// A running shim of `key` other than `pid` that a running process other than
    /// `pid`'s started (another dockerd): the port is that dockerd's. The starter with
    /// it. (Not one whose dockerd exited: init is its parent now.) Only a genuine one
    /// (`isGenuine`, as `pid`'s user) counts: any user can start a program that calls
    /// itself a shim of any port.
    public static func publishingUnderAnotherStarter(_ key: RegistrationKey, than pid: Int32 = getpid(), root: String = "/proc") -> (shim: Shim, starter: Owner)? {
        let own = ProcessTable.starter(of: pid, root: root)
        let user = ProcessTable.userID(of: pid, root: root) ?? getuid()
        for shim in all(root: root) where shim.arguments.key == key && shim.owner.pid != pid && isGenuine(shim, user: user, root: root) {
            if let starter = ProcessTable.starter(of: shim.owner.pid, root: root), starter != own { return (shim, starter) }
        }
        return nil
    }

    /// Whether `shim` runs this very edshim, as `user`: what a dockerd of this host
    /// starts. Not a program that only names itself edshim (its executable is
    /// another file), nor edshim run by another user (dockerd's shims run as root).
    public static func isGenuine(_ shim: Shim, user: UInt32, root: String = "/proc") -> Bool {
        executableCheck(of: shim.owner.pid, root: root) == .same && ProcessTable.userID(of: shim.owner.pid, root: root) == user
    }

    /// `all()` without what any local user can start: processes seen to run another
    /// executable than this one (only named edshim), and edshim run by a user other
    /// than root (dockerd's) or the caller. Those whose executable cannot be read
    /// (root's, to a caller without root) stay.
    public static func allButImpostors(root: String = "/proc") -> [Shim] {
        let caller = geteuid()
        return all(root: root).filter { shim in
            if case .other = executableCheck(of: shim.owner.pid, root: root) { return false }
            guard let user = ProcessTable.userID(of: shim.owner.pid, root: root) else { return true }
            return user == 0 || user == caller
        }
    }

    /// Every running shim of the caller's network namespace, by process id: one of a
    /// dockerd inside a container publishes that container's ports, not this host's.
    public static func all(root: String = "/proc") -> [Shim] {
        entryNames(in: root).compactMap { Int32($0).flatMap { shim(pid: $0, root: root) } }
            .filter { sharesNetworkNamespace($0.owner.pid, root: root) != false }
            .sorted { $0.owner.pid < $1.owner.pid }
    }

    /// Whether process `pid` runs in the caller's network namespace; nil when that
    /// cannot be read (`/proc/PID/ns` takes ptrace access: a server run without root
    /// cannot look at a root shim's).
    public static func sharesNetworkNamespace(_ pid: Int32, root: String = "/proc") -> Bool? {
        var own = stat()
        var other = stat()
        guard stat("\(root)/self/ns/net", &own) == 0, stat("\(root)/\(pid)/ns/net", &other) == 0 else { return nil }
        return own.st_dev == other.st_dev && own.st_ino == other.st_ino
    }

    /// The names in directory `path` (none when it cannot be read).
    public static func entryNames(in path: String) -> [String] {
        guard let directory = opendir(path) else { return [] }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            names.append(withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            })
        }
        return names
    }

    /// Names the calling process `edshim` (its `comm`), so resync and the server can
    /// tell shims from other processes.
    public static func nameCurrentProcess() {
        let fd = open("/proc/self/comm", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = processName.utf8CString.withUnsafeBufferPointer { write(fd, $0.baseAddress, $0.count - 1) }
        close(fd)
    }
}
