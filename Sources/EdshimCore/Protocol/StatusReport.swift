/// How `edshim status` shows registrations.
public enum StatusReport {
    /// One JSON object per registration, in key order, as a JSON array; with
    /// `serving`, each says what serves its port (`served_by`); `"registering":true`
    /// marks one the server has not answered yet, `"accepting":false` one whose port
    /// accepts no connection (`notAccepting`).
    public static func json(_ registrations: [Registration], serving: [RegistrationKey: Serving] = [:], notAccepting: Set<RegistrationKey> = [], registering: Set<RegistrationKey> = []) -> String {
        let array = JSONValue.array(registrations.map { registration in
            var object = WireResponse.encode(registration)
            object.append("service_name", .string(registration.serviceName))
            object.append("listener", .string(ServiceNaming.listenerName(for: registration.key)))
            if let served = serving[registration.key] { object.append("served_by", .string(served.rawValue)) }
            object.append("registering", registering.contains(registration.key) ? .bool(true) : nil)
            object.append("accepting", notAccepting.contains(registration.key) ? .bool(false) : nil)
            return .object(object)
        })
        return String(decoding: array.serialized, as: UTF8.self)
    }

    /// What serves a registered port, as the host's listening sockets show it.
    public enum Serving: String, CaseIterable, Sendable {
        /// Another socket than the shim's listens there: Envoy's.
        case envoy
        /// The shim's own socket: it serves the port until Envoy listens there.
        case shim
        /// Nothing listens: Envoy does not run (or has not bound the port yet).
        case nothing
        /// Another program than Envoy and the shim listens: it took the port while
        /// Envoy did not hold it (Envoy restarted), and Envoy could not bind it.
        case other

        /// What serves `registration`'s port, given the addresses sockets of the host
        /// listen on, whether its shim holds one of them itself (nil: cannot be seen),
        /// and the processes holding the others (empty: none seen).
        public static func of(_ registration: Registration, listening: Set<SocketEndpoint>, shimServesItself: Bool?, otherHolders: [PortHolders.Holder] = []) -> Serving {
            guard listening.contains(registration.key.host) else { return .nothing }
            if shimServesItself == true { return .shim }
            if !otherHolders.isEmpty, !otherHolders.contains(where: \.isEnvoy) { return .other }
            return .envoy
        }
    }

    /// A TCP shim of the server whose port is not registered.
    public struct UnregisteredShim: Sendable {
        /// The shim.
        public var shim: ShimProcesses.Shim
        /// True when it serves its port itself (the server or Envoy was not there when
        /// it registered; it hands the port over once Envoy can take it), false when it
        /// does not (`othersListen` says whether something else does), nil when that
        /// cannot be seen (another user's process).
        public var servesItself: Bool?
        /// Another socket listens on its port (Envoy's, as the server configured it
        /// before losing the registration or becoming unreachable).
        public var othersListen: Bool
        /// The server is registering its port (it has not answered yet).
        public var registering: Bool
        /// The socket the shim registers with, when it is another than the one asked
        /// and no server answers there: its dockerd lacks the server's EDSHIM_SOCKET.
        public var unansweredSocket: String?

        /// A shim and what serves its port.
        public init(_ shim: ShimProcesses.Shim, servesItself: Bool?, othersListen: Bool = false, registering: Bool = false, unansweredSocket: String? = nil) {
            self.shim = shim
            self.servesItself = servesItself
            self.othersListen = othersListen
            self.registering = registering
            self.unansweredSocket = unansweredSocket
        }

        /// The MODE cell, each explained in a line after the table.
        enum Mode: String, CaseIterable {
            case registering, itself, envoy, unserved
            case otherSocket = "other-socket"
            case unregistered
        }

        var mode: Mode {
            if registering { return .registering }
            if unansweredSocket != nil { return .otherSocket }
            return switch servesItself {
            case true?: .itself
            case false? where othersListen: .envoy
            case false?: .unserved
            case nil: .unregistered
            }
        }
    }

    /// An aligned table with a header, or a sentence when there is nothing: the
    /// server's registrations, then the TCP ports of shims that are not registered
    /// (mode `itself` when the shim serves the port as docker-proxy would, `unserved`
    /// when nothing does, `unregistered` when that cannot be seen, each explained in a
    /// line after the table), then the UDP ports that
    /// shims proxy themselves (they never register: no Envoy service, mode `udp-proxy`).
    /// `serverReachable` false: the server could not be asked, and the notes on the
    /// TCP shims' modes say what to do then.
    /// `stoppedEnvoys`: stopped Envoys listening on registered ports, each named in a
    /// line after the table; `notAccepting`: the registered ports found not accepting,
    /// noted like the others; `registering`: those the server has not answered yet,
    /// noted `(registering)` while Envoy does not serve them. `otherServers`: how many
    /// TCP shims register with each other socket where a server answers (another
    /// server's ports: said in a line, not listed).
    /// `replacedBinary`: how many of the shims listed run an edshim replaced since
    /// they started (an upgrade), said in a line.
    /// `docker`: the ports dockerd publishes that no proxy serves (`no-proxy` rows,
    /// last), or why Docker could not be asked (said in a line).
    public static func table(_ registrations: [Registration], serving: [RegistrationKey: Serving] = [:], unregistered: [UnregisteredShim] = [], udpShims: [ShimProcesses.Shim] = [], stoppedEnvoys: [PortHolders.Holder] = [], notAccepting: Set<RegistrationKey> = [], registering: Set<RegistrationKey> = [], serverReachable: Bool = true, socketPath: String = EdshimDefaults.socketPath, otherServers: [String: Int] = [:], replacedBinary: Int = 0, docker: DockerView = .notAsked) -> String {
        let unproxied = docker.unproxied
        // Docker's names now, where it was asked: a renamed container shows renamed.
        let names = docker.names
        var footer = otherServers.sorted { $0.key < $1.key }.map { path, count in
            "\(count) more TCP port\(count == 1 ? "'s shim registers" : "s' shims register") with the server at \(path): EDSHIM_SOCKET=\(path) edshim status lists \(count == 1 ? "it" : "them")"
        }
        if replacedBinary > 0 {
            footer.append("\(replacedBinary) of these shims run\(replacedBinary == 1 ? "s" : "") the edshim replaced since \(replacedBinary == 1 ? "it" : "they") started (an upgrade): the old release's code, until the container restarts, or a dockerd restart with live-restore and EDSHIM_DOCKERD_RESTART_GRACE replaces \(replacedBinary == 1 ? "it" : "them") (docs/operations.md, Upgrade)")
        }
        if case .unreachable(let host, let reason) = docker {
            footer.append("Docker at \(host) could not be asked: \(reason). The ports it publishes that no proxy serves are not looked for (--docker-host, or DOCKER_HOST, says where dockerd listens)")
        }
        guard !registrations.isEmpty || !unregistered.isEmpty || !udpShims.isEmpty || !unproxied.isEmpty else {
            return (["no published ports registered"] + footer).joined(separator: "\n")
        }
        let header = ["HOST", "PROTO", "CONTAINER", "NAME", "SERVICE", "MODE", "OWNER"]
        let registered = registrations.map { registration in
            [
                registration.key.host.description,
                registration.key.proto.rawValue,
                registration.container.description,
                names[registration.key] ?? registration.metadata.containerName ?? "-",
                registration.serviceName,
                registration.mode.rawValue + (note(for: registration.key, serving: serving, notAccepting: notAccepting, registering: registering) ?? ""),
                registration.owner.description,
            ]
        }
        let unregisteredRows = unregistered.sorted { $0.shim.arguments.key < $1.shim.arguments.key }.map { entry in
            [
                entry.shim.arguments.host.description,
                entry.shim.arguments.proto.rawValue,
                entry.shim.arguments.container.description,
                names[entry.shim.arguments.key] ?? "-",
                "-",
                entry.mode.rawValue,
                entry.shim.owner.description,
            ]
        }
        let proxied = udpShims.sorted { $0.arguments.key < $1.arguments.key }.map { shim in
            [
                shim.arguments.host.description,
                shim.arguments.proto.rawValue,
                shim.arguments.container.description,
                names[shim.arguments.key] ?? "-",
                "-",
                "udp-proxy",
                shim.owner.description,
            ]
        }
        let unproxiedRows = unproxied.map { port in
            [port.key.host.description, port.key.proto.rawValue, "-:\(port.containerPort)", port.container, "-", "no-proxy", "-"]
        }
        let rows = registered + unregisteredRows + proxied + unproxiedRows
        let widths = header.indices.map { column in
            ([header] + rows).map { $0[column].count }.max() ?? 0
        }
        var lines = ([header] + rows).map { row in
            row.enumerated().map { column, cell in
                column == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[column] - cell.count)
            }.joined(separator: "  ")
        }
        let notes = Set(registrations.compactMap { note(for: $0.key, serving: serving, notAccepting: notAccepting, registering: registering) })
        if notes.contains(registeringNote) {
            lines.append("(registering): the server is registering the port: Envoy serves it once it listens, and the shim hears so (within 12 s); look again in a moment")
        }
        let served = Set(Serving.allCases.filter { servingNote($0).map(notes.contains) ?? false })
        if served.contains(.nothing) {
            lines.append("(closed): nothing listens on the port: is Envoy running? Envoy serves it again once it runs (the server keeps the registration)")
        }
        if served.contains(.shim) {
            lines.append("(shim): the shim serves the port itself until Envoy listens on it (is Envoy running?)")
        }
        if served.contains(.other) {
            lines.append("(other program): another program than Envoy listens on the port (it took it while Envoy restarted, and Envoy could not bind it): its clients reach that program; stop it (ss -ltnp shows it), and the server offers the port to Envoy again")
        }
        if notes.contains(notAcceptingNote) {
            lines.append("(not accepting): Envoy listens on the port but accepts no connection (stopped, or hung: a connection still waited a second later)")
        }
        for envoy in stoppedEnvoys {
            lines.append("\(envoy) is stopped (SIGSTOP): the ports it listens on accept no connection, and it takes no update, until it is resumed: kill -CONT \(envoy.pid)")
        }
        let modes = Set(unregistered.map(\.mode))
        let resync = EdshimDefaults.resyncCommand(socketPath: socketPath)
        let unanswered = Set(unregistered.compactMap(\.unansweredSocket)).sorted().joined(separator: ", ")
        for mode in UnregisteredShim.Mode.allCases where modes.contains(mode) {
            lines.append("\(mode.rawValue): " + legend(of: mode, serverReachable: serverReachable, resync: resync, unanswered: unanswered, socketPath: socketPath))
        }
        if !unproxied.isEmpty {
            var containers: [String] = []
            for port in unproxied where !containers.contains(port.container) { containers.append(port.container) }
            lines.append("no-proxy: dockerd publishes the port (docker ps lists it), but no proxy serves it: its shim was killed (kill -9: dockerd does not start it again), or dockerd does not run edshim (--userland-proxy-path); docker restart \(containers.joined(separator: " ")) publishes \(unproxied.count == 1 ? "it" : "them") again")
        }
        return (lines + footer).joined(separator: "\n")
    }

    /// What status learnt from Docker about the ports it publishes.
    public enum DockerView: Sendable {
        /// Not asked (the server could not be reached, or --json).
        case notAsked
        /// Asked: the published ports that no proxy serves (`PublishedPorts.unproxied`),
        /// and the name of the container each published port is for.
        case asked(unproxied: [PublishedPort], names: [RegistrationKey: String] = [:])
        /// Docker at `host` did not answer, for `reason`.
        case unreachable(host: String, reason: String)

        public var unproxied: [PublishedPort] {
            if case .asked(let unproxied, _) = self { return unproxied }
            return []
        }

        /// The container each published port is for, as Docker names it now.
        public var names: [RegistrationKey: String] {
            if case .asked(_, let names) = self { return names }
            return [:]
        }
    }

    /// What an unregistered shim's MODE means, and what to do about it; `unanswered`:
    /// the sockets of the `other-socket` shims.
    private static func legend(of mode: UnregisteredShim.Mode, serverReachable: Bool, resync: String, unanswered: String, socketPath: String) -> String {
        switch (mode, serverReachable) {
        case (.otherSocket, _): "the shim registers with \(unanswered) (its dockerd's EDSHIM_SOCKET, else the default), where no server answers, so it serves its port itself, without Envoy: give dockerd EDSHIM_SOCKET=\(socketPath) (a drop-in for docker.service, docs/operations.md) and restart it"
        case (.registering, _): "the server is registering the port (docker run is publishing it): Envoy serves it once it listens; look again in a moment"
        case (.itself, true): "the shim serves the port as docker-proxy would, until Envoy can take it (is Envoy running? can the server write its files: its log, or GET /healthz?)"
        case (.itself, false): "the shim serves the port as docker-proxy would, until the server (which cannot be reached: start it) and Envoy can take it"
        case (.envoy, true): "another socket listens on the port, Envoy's as the server last configured it, but the server does not list it (it lost the registration): run \(resync) (when the server's xds directory was lost too, that Envoy still follows the deleted one and reads no update: restart Envoy first)"
        case (.envoy, false): "another socket listens on the port: Envoy's, as the server configured it before it could not be reached"
        case (.unserved, true): "neither Envoy nor the shim serves the port (the server lost its registration): run \(resync)"
        case (.unserved, false): "neither Envoy nor the shim serves the port: start the server and Envoy (the server restores its registrations from its state file)"
        case (.unregistered, true): "not in the server's registry; run edshim status as root to see whether its shim serves it"
        case (.unregistered, false): "run edshim status as root to see what serves it"
        }
    }

    static let notAcceptingNote = " (not accepting)"
    static let registeringNote = " (registering)"

    /// What the MODE cell adds for a registration Envoy does not serve as registered:
    /// that the server is still registering it (when Envoy does not serve it yet, or
    /// its shim still does), what serves it instead, or that Envoy listens but does
    /// not accept.
    static func note(for key: RegistrationKey, serving: [RegistrationKey: Serving], notAccepting: Set<RegistrationKey>, registering: Set<RegistrationKey> = []) -> String? {
        if registering.contains(key), serving[key] == .nothing || serving[key] == .shim { return registeringNote }
        return serving[key].flatMap(servingNote) ?? (notAccepting.contains(key) ? notAcceptingNote : nil)
    }

    /// What the MODE cell adds when Envoy does not serve the port.
    static func servingNote(_ serving: Serving) -> String? {
        switch serving {
        case .envoy: nil
        case .shim: " (shim)"
        case .nothing: " (closed)"
        case .other: " (other program)"
        }
    }
}
