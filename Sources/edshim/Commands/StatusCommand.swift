import ArgumentParser
import EdshimCore
#if canImport(Glibc)
import Glibc
#endif

/// `edshim status`: what the server has registered.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "List the published ports the server knows, and where they go.",
        discussion: """
            Asks the server over its socket ($EDSHIM_SOCKET, else /run/edshim/edshim.sock).
            Each line is one registration: host address and port, container address, the
            container's name (as Docker names it now, from the ports it publishes; else
            when its port was registered; - when Docker did not say), the Envoy service
            (cluster) name, the mode, and the shim process that owns it.

            TCP ports whose shim runs but which the server has not registered follow,
            found among the processes of this host's network namespace, with mode
            `registering` when the server is registering the port (docker run is
            publishing it; a shim not listed is asked about again 0.1 s later, in case
            it had just started), `itself` when the shim serves the port as docker-proxy would (the server or
            Envoy was not there; it hands the port to Envoy as soon as it can), `envoy`
            when another socket (Envoy's, as the server configured it) listens on it,
            `unserved` when nothing serves it (the server lost it: run edshim resync),
            `other-socket` when its shim registers with the default socket, where no
            server listens, while this server has another (its dockerd was not given
            EDSHIM_SOCKET: the shim serves the port itself, without Envoy),
            or `unregistered` when status, not run as root, cannot see another user's
            shim; a line after the table says what each mode shown means. Shims that
            register with another server (one listens at their socket) are not listed:
            a line counts them, naming that socket. Another line counts the shims that
            run an edshim replaced since they started (an upgrade: they keep the old
            release's code until their container restarts).

            UDP ports follow: those of the dockerd whose shims use this server (their
            EDSHIM_SOCKET names the socket asked here, or cannot be read, or is the
            default one where no server listens: other-socket above), found among
            the processes of this host's network namespace. edshim proxies them itself, without the server or Envoy, so their
            name is the container's as Docker names it (- when Docker cannot be asked),
            their service `-`, and their mode `udp-proxy`. The shims' ports are listed even
            when the server cannot be reached, TCP ones with the modes above (the
            command then still fails, saying so).

            Last come the ports dockerd publishes (asked at --docker-host: docker ps's
            ports of running containers) that no proxy serves, mode `no-proxy`, named
            from their container: a shim killed with kill -9 (dockerd never starts it
            again, and nothing else notices), or a dockerd not run with edshim as its
            userland proxy; docker restart CONTAINER publishes it again. A port a
            process listens on (TCP) or is bound to (UDP), such as a docker-proxy
            started before edshim was installed, counts as served. When Docker cannot
            be asked, a line says why. A container whose main process has exited is
            left out: dockerd still lists it running while it stops its proxies one
            after another (docker stop, rm -f, restart, a crash: seconds for a wide
            port range).

            A registered port's mode is followed by `(registering)` while the server
            has not answered its shim yet and Envoy does not serve it (it waits for
            Envoy to listen), by `(closed)` when nothing listens on it
            (Envoy does not run: the port is closed until it does), by `(shim)` when its
            shim serves it itself, waiting for Envoy to listen, or by `(other program)`
            when a program other than Envoy listens on it (it took the port while Envoy
            restarted; run as root to see it), or by `(not accepting)` when the Envoy
            listening on it is stopped (SIGSTOP; the table names it).

            --check exits 1 when a TCP port is not served by Envoy as registered (a
            mode followed by a note above, or a shim the server does not list), naming
            each on stderr, for a monitoring check; 0 when every one is. Ports being
            registered do not count: docker run is publishing them; and a port counts
            only when it is found so again a second later (a port being withdrawn, by
            docker rm or stop, passes through such states for a moment). So do the
            no-proxy ports, TCP and UDP (Docker out of reach is not a failure). A port where a
            connection waits unaccepted for a second (looked at again a second later,
            only when one is queued) counts too, `(not accepting)`: Envoy listens but
            does not accept (hung). Without it, status exits 0 whenever the server
            answered.

            --json prints the server's registrations as a JSON array of objects with the
            same facts, `served_by` saying what serves each port (envoy, shim, other
            or nothing), `"registering":true` on one the server has not answered yet,
            `"accepting":false` on one that accepts no connection, for scripts (the unregistered TCP ports, the UDP ports and the
            no-proxy ports are not registrations: not in it; Docker is asked only
            with --check).

            Examples:
              edshim status
              edshim status --check     # exit 1 if a TCP port is not served by Envoy,
                                        # or a published port by any proxy
              EDSHIM_SOCKET=/run/edshim-test/edshim.sock edshim status --json
            """
    )

    @Flag(help: "Print a JSON array instead of a table.")
    var json = false

    @Flag(help: "Exit 1, naming them on stderr, when a TCP port is not served by Envoy as registered: (closed), (shim), (other program), (not accepting), or a shim the server does not list; or when a port dockerd publishes is served by no proxy (no-proxy). For monitoring.")
    var check = false

    @Option(name: .customLong("docker-host"), help: "Where dockerd's API is, to look for the ports it publishes that no proxy serves: unix:// or tcp:// (default: $DOCKER_HOST, else \(EdshimDefaults.dockerHost), as for the server).")
    var dockerHost: String?

    @OptionGroup var server: ServerSocketOptions

    func validate() throws {
        try DockerHost.validate(option: dockerHost)
    }

    /// The ports Docker publishes that no proxy serves: not among `listed` (the
    /// registrations and the shims running), and nothing listening (TCP) or bound
    /// (UDP) on them.
    private func dockerView(listed: Set<RegistrationKey>, listening: [ListeningSocket]) async -> StatusReport.DockerView {
        let text = dockerHost ?? EdshimDefaults.environmentDockerHost
        do {
            let udp: [ListeningSocket]? = try? (ListenTable.unconnectedUDPSockets(family: AF_INET).get() + ListenTable.unconnectedUDPSockets(family: AF_INET6).get())
            let look = try await PublishedPorts.look(
                at: try DockerHost(parsing: text), listed: listed, listeningTCP: Set(listening.map(\.endpoint)), boundUDP: udp.map { Set($0.map(\.endpoint)) },
                isRunning: { pid in ProcessTable.owner(of: pid).map { ProcessTable.liveness(of: $0) == .running } ?? false }
            )
            return .asked(unproxied: look.unproxied, names: Dictionary(look.published.map { ($0.key, $0.container) }, uniquingKeysWith: { first, _ in first }))
        } catch let failure as DockerEngineClient.Failure {
            return .unreachable(host: text, reason: failure.description)
        } catch {
            return .unreachable(host: text, reason: "\(error)")
        }
    }

    /// --check's words for the published ports no proxy serves.
    private static func unproxiedFailure(_ unproxied: [(key: RegistrationKey, line: String)]) -> String {
        "\(unproxied.count) port\(unproxied.count == 1 ? "" : "s") that dockerd publishes served by no proxy: \(unproxied.map(\.line).joined(separator: ", "))"
    }

    /// What serves each registered port: Envoy, its shim (waiting for Envoy), another
    /// program (Envoy could not bind it), or nothing (Envoy does not run).
    /// `holders`: who holds the sockets on registered addresses (`holders(of:listening:)`).
    private static func serving(_ registrations: [Registration], shims: [ShimProcesses.Shim], listening: [ListeningSocket], holders: [PortHolders.Holder]) -> [RegistrationKey: StatusReport.Serving] {
        let shimsByPID = Dictionary(shims.map { ($0.owner.pid, $0) }, uniquingKeysWith: { first, _ in first })
        // Indexed once: a host with thousands of ports has an Envoy socket per worker on each.
        let byAddress = Dictionary(grouping: listening, by: \.endpoint)
        let addresses = Set(byAddress.keys)
        var serving: [RegistrationKey: StatusReport.Serving] = [:]
        for registration in registrations {
            let shim = shimsByPID[registration.owner.pid].flatMap { $0.owner == registration.owner ? $0 : nil }
            let onItsAddress = byAddress[registration.key.host] ?? []
            let servesItself = onItsAddress.isEmpty ? false : shim.flatMap { ShimProcesses.servesItself($0, listening: onItsAddress) }
            let others = holders.filter { $0.addresses.contains(registration.key.host) && $0.pid != registration.owner.pid }
            serving[registration.key] = .of(registration, listening: addresses, shimServesItself: servesItself, otherHolders: others)
        }
        return serving
    }

    /// Who holds the sockets on registered addresses, read from /proc once for all
    /// (empty where it cannot be seen: not run as root).
    private static func holders(of registrations: [Registration], listening: [ListeningSocket]) -> [PortHolders.Holder] {
        let registered = Set(registrations.map(\.key.host))
        return PortHolders.holding(listening.filter { registered.contains($0.endpoint) })
    }

    /// The registered ports with a connection still waiting unaccepted a second after
    /// it was seen (by its socket cookie): an Envoy that listens but does not accept
    /// (stopped, hung). Envoy accepts in microseconds, so this only waits when a
    /// registered port has a connection queued.
    private static func notAccepting(_ registrations: [Registration], listening: [ListeningSocket]) -> Set<RegistrationKey> {
        let queued = UnacceptedConnections.queued(registrations, listening: listening)
        let seen = Set(queued.isEmpty ? [] : ListenTable.unacceptedConnections().map(\.cookie))
        guard !seen.isEmpty else { return [] }
        usleep(1_000_000)
        return UnacceptedConnections.stalled(queued, connections: ListenTable.unacceptedConnections(), earlier: seen)
    }

    /// The UDP shims of the dockerd whose shims register with `socketPath` (UDP ports
    /// never register, but their dockerd's environment names the server all the
    /// same), those whose environment cannot be read, and those of a dockerd whose
    /// socket no server answers at: not another server's.
    private static func udpShims(among shims: [ShimProcesses.Shim], of socketPath: String, others: OtherSockets) -> [ShimProcesses.Shim] {
        shims.filter { $0.arguments.proto == .udp && ($0.registers(with: socketPath) || !$0.socketPathKnown || others.unanswered.contains($0.socketPath)) }
    }

    /// The other sockets the shims register with (their dockerd's EDSHIM_SOCKET names
    /// another than the one asked): the default one when nothing listens there and
    /// another was asked, whose shims are listed here (a dockerd not given the
    /// server's EDSHIM_SOCKET: its TCP shims serve their ports themselves, without
    /// Envoy, and --check fails them); and how many TCP shims register with each
    /// where something listens (another server's: said in a line, not listed).
    /// Another socket where nothing listens is left out: a server stopped, or one
    /// whose shims are not this server's concern (a test's).
    struct OtherSockets {
        var unanswered: Set<String> = []
        var answered: [String: Int] = [:]

        /// `shims`: genuine ones (`allButImpostors`): a socket named by any other
        /// process is not connected to.
        init(_ shims: [ShimProcesses.Shim], besides socketPath: String) {
            let others = shims.filter { $0.socketPathKnown && !$0.registers(with: socketPath) }
            for socket in Set(others.map(\.socketPath)) {
                if ServerClient(socketPath: socket).nothingListens {
                    guard socket == EdshimDefaults.socketPath else { continue }
                    unanswered.insert(socket)
                } else {
                    let tcp = others.filter { $0.arguments.proto == .tcp && $0.socketPath == socket }.count
                    if tcp > 0 { answered[socket] = tcp }
                }
            }
        }

        /// The TCP shims registering with a socket where nothing listens.
        func tcpStrays(among shims: [ShimProcesses.Shim]) -> [ShimProcesses.Shim] {
            shims.filter { $0.arguments.proto == .tcp && $0.socketPathKnown && unanswered.contains($0.socketPath) }
        }
    }

    /// A TCP shim the server does not list, with what serves its port; `registering`
    /// when the server is registering its port for it.
    private static func unregistered(_ shim: ShimProcesses.Shim, listening: [ListeningSocket], registering: [RegistrationInProgress] = [], unansweredSocket: String? = nil) -> StatusReport.UnregisteredShim {
        let servesItself = ShimProcesses.servesItself(shim, listening: listening)
        let othersListen = listening.contains { $0.endpoint == shim.arguments.host } && servesItself == false
        let inProgress = registering.contains { $0.key == shim.arguments.key && $0.owner == shim.owner }
        return StatusReport.UnregisteredShim(shim, servesItself: servesItself, othersListen: othersListen, registering: inProgress, unansweredSocket: unansweredSocket)
    }

    /// `unregistered`, with those the server has registered, or is registering, when
    /// asked again a moment later counted as being registered: a shim asks the server
    /// within milliseconds of its start, and one read from /proc just before the
    /// server was asked the first time may not have yet. Asked only when there is
    /// such a shim; a shim the server lost stays unlisted.
    private static func askedAgain(_ unregistered: [StatusReport.UnregisteredShim], client: ServerClient) -> [StatusReport.UnregisteredShim] {
        guard unregistered.contains(where: { !$0.registering }) else { return unregistered }
        usleep(100_000)
        guard let (registrations, registering) = listing(client) else { return unregistered }
        let listed = Set(registrations.map { RegistrationInProgress(key: $0.key, owner: $0.owner) }).union(registering)
        // A shim gone meanwhile was stopping (its port withdrawn): not listed.
        return unregistered.filter { ProcessTable.liveness(of: $0.shim.owner) != .exited }.map { entry in
            var entry = entry
            // Not one that serves its port itself: its registration is a retry (the
            // server does not count those as registering either).
            if entry.servesItself != true, listed.contains(RegistrationInProgress(key: entry.shim.arguments.key, owner: entry.shim.owner)) { entry.registering = true }
            return entry
        }
    }

    /// What status saw at one moment: the server's registrations, what serves each
    /// port, the shims it does not list, and (with --check) what is not served.
    private struct Snapshot {
        var registrations: [Registration]
        var registering: Set<RegistrationKey>
        var shims: [ShimProcesses.Shim]
        var serving: [RegistrationKey: StatusReport.Serving]
        var unregistered: [StatusReport.UnregisteredShim]
        var stopped: [PortHolders.Holder]
        var notAccepting: Set<RegistrationKey>
        var notServed: [(key: RegistrationKey, line: String)]
        var docker: StatusReport.DockerView
        /// With --check: the published ports no proxy serves.
        var unproxied: [(key: RegistrationKey, line: String)]
    }

    /// The server's registrations and those in progress, asked again (nil when it
    /// does not answer with them).
    private static func listing(_ client: ServerClient) -> (registrations: [Registration], registering: [RegistrationInProgress])? {
        guard case .registrations(let registrations, let registering)? = try? client.exchange(.list, deadline: .after(milliseconds: 5000)) else { return nil }
        return (registrations, registering)
    }

    /// Looks at the host for the server's listing (`shims` read before it was asked).
    private func snapshot(_ registrations: [Registration], registering inProgress: [RegistrationInProgress], shims: [ShimProcesses.Shim], others: OtherSockets, client: ServerClient) async -> Snapshot {
        let registering = Set(inProgress.map(\.key))
        let listening = ListenTable.read()
        let holders = Self.holders(of: registrations, listening: listening)
        let serving = Self.serving(registrations, shims: shims, listening: listening, holders: holders)
        // An Envoy that is stopped accepts nothing on the ports it listens on, even
        // with no connection waiting yet: said, and failed by --check.
        let stopped = holders.filter { $0.isEnvoy && ProcessTable.isStopped($0.pid) }
        let registeredKeys = Set(registrations.map(\.key))
        // The TCP shims of this server whose port is registered by no one (an old
        // shim whose port a newer one registered is not listed).
        let unregisteredShims = ShimProcesses.tcpShims(registeringWith: client.socketPath, orUnknown: true, among: shims).filter { !registeredKeys.contains($0.arguments.key) }
        let unregistered = Self.askedAgain(unregisteredShims.map { Self.unregistered($0, listening: listening, registering: inProgress) }, client: client)
            + others.tcpStrays(among: shims).map { Self.unregistered($0, listening: listening, unansweredSocket: $0.socketPath) }
        // The ports of a stopped Envoy, always; with --check, those where a queued
        // connection still waits a second later too: looked at before the table,
        // which notes them.
        let heldByStopped = Set(registrations.filter { registration in stopped.contains { $0.addresses.contains(registration.key.host) } }.map(\.key))
        var notAccepting = heldByStopped
        if check {
            notAccepting.formUnion(Self.notAccepting(registrations.filter { !heldByStopped.contains($0.key) }, listening: listening))
        }
        let notServed = check ? StatusReport.portsNotServedByEnvoy(registrations, serving: serving, unregistered: unregistered, notAccepting: notAccepting, registering: registering) : []
        // --json alone prints the registrations only: Docker is not asked.
        let docker = json && !check ? .notAsked : await dockerView(listed: registeredKeys.union(shims.map(\.arguments.key)), listening: listening)
        let unproxied = check ? StatusReport.unproxiedLines(docker.unproxied) : []
        return Snapshot(registrations: registrations, registering: registering, shims: shims, serving: serving, unregistered: unregistered, stopped: stopped, notAccepting: notAccepting, notServed: notServed, docker: docker, unproxied: unproxied)
    }

    func run() async throws {
        let client = server.client
        // Read before the server is asked: a shim it does not list had started before
        // it answered (`askedAgain`).
        let shims = ShimProcesses.allButImpostors()
        let others = OtherSockets(shims, besides: client.socketPath)
        let response: WireResponse
        do {
            response = try client.exchange(.list, deadline: .after(milliseconds: 5000))
        } catch {
            // The shims run without the server: show their ports all the same, when a
            // table was asked for (the TCP ones with what serves each), and say that the
            // server's own view is missing.
            if json { throw CommandFailure(error.description) }
            let tcpShims = ShimProcesses.tcpShims(registeringWith: client.socketPath, orUnknown: true, among: shims)
            let udpShims = Self.udpShims(among: shims, of: client.socketPath, others: others)
            let strays = others.tcpStrays(among: shims)
            guard !tcpShims.isEmpty || !udpShims.isEmpty || !strays.isEmpty else { throw CommandFailure(error.description) }
            let listening = ListenTable.read()
            let unregistered = tcpShims.map { Self.unregistered($0, listening: listening) } + strays.map { Self.unregistered($0, listening: listening, unansweredSocket: $0.socketPath) }
            var docker = await dockerView(listed: Set(shims.map(\.arguments.key)), listening: listening)
            var unproxied = check ? StatusReport.unproxiedLines(docker.unproxied) : []
            if !unproxied.isEmpty {
                // Looked at again a second later, as when the server answers.
                try await Task.sleep(for: .seconds(1))
                let before = Set(unproxied.map(\.key))
                docker = await dockerView(listed: Set(ShimProcesses.allButImpostors().map(\.arguments.key)), listening: ListenTable.read())
                unproxied = StatusReport.unproxiedLines(docker.unproxied).filter { before.contains($0.key) }
            }
            print(StatusReport.table([], unregistered: unregistered, udpShims: udpShims, serverReachable: false, socketPath: client.socketPath, otherServers: others.answered, docker: docker))
            throw CommandFailure("\(error.description); the ports above are those of the shims running, as this host's sockets show them (the server's registrations could not be listed)" + (unproxied.isEmpty ? "" : "; " + Self.unproxiedFailure(unproxied)))
        }
        switch response {
        case .registrations(let registrations, let inProgress):
            var seen = await snapshot(registrations, registering: inProgress, shims: shims, others: others, client: client)
            // A port being published or withdrawn passes through states that look wrong
            // for a moment (a shim deregistering, Envoy letting go of its listener): a
            // port fails the check only when it is found so again a second later,
            // whatever the reason each time.
            if check, !seen.notServed.isEmpty || !seen.unproxied.isEmpty {
                try await Task.sleep(for: .seconds(1))
                let later = ShimProcesses.allButImpostors()
                if let (registrations, inProgress) = Self.listing(client) {
                    let before = Set((seen.notServed + seen.unproxied).map(\.key))
                    seen = await snapshot(registrations, registering: inProgress, shims: later, others: others, client: client)
                    seen.notServed = seen.notServed.filter { before.contains($0.key) }
                    seen.unproxied = seen.unproxied.filter { before.contains($0.key) }
                }
            }
            if json {
                print(StatusReport.json(seen.registrations, serving: seen.serving, notAccepting: seen.notAccepting, registering: seen.registering))
            } else {
                let udpShims = Self.udpShims(among: seen.shims, of: client.socketPath, others: others)
                let listed = seen.registrations.map(\.owner.pid) + seen.unregistered.map(\.shim.owner.pid) + udpShims.map(\.owner.pid)
                print(StatusReport.table(seen.registrations, serving: seen.serving, unregistered: seen.unregistered, udpShims: udpShims, stoppedEnvoys: seen.stopped, notAccepting: seen.notAccepting, registering: seen.registering, socketPath: client.socketPath, otherServers: others.answered, replacedBinary: Set(listed).filter { ShimProcesses.runsReplacedBinary($0) }.count, docker: seen.docker))
            }
            guard check, !seen.notServed.isEmpty || !seen.unproxied.isEmpty else { return }
            var failures: [String] = []
            if !seen.notServed.isEmpty {
                failures.append("\(seen.notServed.count) of \(seen.registrations.count + seen.unregistered.count) TCP ports not served by Envoy as registered: \(seen.notServed.map(\.line).joined(separator: ", "))")
            }
            if !seen.unproxied.isEmpty { failures.append(Self.unproxiedFailure(seen.unproxied)) }
            throw CommandFailure(failures.joined(separator: "; "))
        case .failure(let error):
            throw CommandFailure(error.message)
        case .ok:
            throw CommandFailure("the server answered without a listing: is it an older edshim?")
        }
    }
}
