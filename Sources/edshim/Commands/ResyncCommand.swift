import ArgumentParser
import EdshimCore
import Foundation

/// `edshim resync`: registers the running shims again.
struct ResyncCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resync",
        abstract: "Register the running shims with a server that lost them.",
        discussion: """
            Finds the edshim shims running on this host (in /proc: processes named
            edshim started with docker-proxy flags, however dockerd ran them) whose
            EDSHIM_SOCKET is this server's socket, run by resync's own user (dockerd's:
            run it as root) from resync's own edshim executable, in its own network
            namespace (it says how many processes named edshim of other users, or
            running other programs, it left out; other namespaces' quietly), and
            registers each TCP port with the server again, on behalf of its own shim
            process. The server checks each process before it accepts.

            Prints `resynced N of M` and exits non-zero if any registration failed. A
            registration the server keeps while Envoy is not running (as while systemd
            restarts both) counts as resynced, and so does one it withdraws for a shim
            that serves its port itself meanwhile (that shim registers again once
            Envoy runs): the summary says how many wait for Envoy, which serves them
            as soon as it runs. One a running Envoy did not take counts as failed.
            Shims that exit or stop meanwhile, or whose port a newer shim holds, are
            left out of M.

            Needed for running shims the server does not know and Envoy does not
            serve. A server started without its state file (lost, corrupt) takes back
            by itself the shims whose ports Envoy serves (their listeners in
            lds.json); resync registers the others (the xds directory lost too).
            contrib/edshim.service runs it after every server start (ExecStartPost),
            and contrib/envoy-edshim.service after every Envoy start (an Envoy that
            was serving from a deleted xds directory starts empty); it is idempotent:
            a second run changes nothing.

            Examples:
              edshim resync
              edshim resync --socket /run/edshim-test/edshim.sock --wait 30
            """
    )

    @OptionGroup var server: ServerSocketOptions

    @Option(name: .long, parsing: .unconditional, help: "Seconds to wait for the server's socket to answer (a server starting). A path that is not a socket, or a socket this user may not use, fails at once.")
    var wait: Double = 10

    @Option(name: .long, parsing: .unconditional, help: "Registrations in flight at once.")
    var parallel: Int = 16

    func validate() throws {
        guard wait >= 0, wait <= 3600 else { throw ValidationError("--wait must be between 0 and 3600 seconds, not \(wait)") }
        guard (1...256).contains(parallel) else { throw ValidationError("--parallel must be between 1 and 256") }
    }

    func run() throws {
        let client = server.client
        try waitForServer(client)
        // Only the TCP shims that register with this socket (a host may run more than
        // one server), and only its own user's: the server registers no other user's.
        // Another user's shim whose socket cannot be read is counted as left out: it
        // may be this server's.
        let found = ShimProcesses.tcpShims(registeringWith: client.socketPath, orUnknown: true)
            .map { (shim: $0, user: ProcessTable.userID(of: $0.owner.pid)) }
        let user = geteuid()
        let ownUsers = found.filter { $0.user == user }.map(\.shim)
        // A shim gone meanwhile (no user) is nobody's to mention.
        let othersUsers = found.compactMap(\.user).filter { $0 != user }
        if !othersUsers.isEmpty {
            FileHandle.standardError.write(Data("edshim resync: left out \(othersUsers.count) process(es) named edshim run by another user (uid \(Set(othersUsers).sorted().map(String.init).joined(separator: ", "))): resync registers only its own user's shims (dockerd's run as root: run resync as root)\n".utf8))
        }
        // The name and flags prove nothing (any program can take them): the server
        // registers only processes that run its edshim, as resync does.
        var otherPrograms: Set<String> = []
        let shims = ownUsers.filter { shim in
            guard case .other(let path, _) = ShimProcesses.executableCheck(of: shim.owner.pid) else { return true }
            otherPrograms.insert(path)
            return false
        }
        if let own = ProcessTable.ownExecutable()?.path, !otherPrograms.isEmpty {
            FileHandle.standardError.write(Data("edshim resync: left out \(ownUsers.count - shims.count) process(es) named edshim that run another program (\(otherPrograms.sorted().joined(separator: ", "))), not this edshim (\(own)): a shim runs the edshim dockerd's --userland-proxy-path names\n".utf8))
        }
        let outcomes = ResyncWorkers(client: client, parallel: parallel).register(shims)
        let vanished = outcomes.filter { if case .vanished = $0 { true } else { false } }.count
        var failed = 0
        var awaitingEnvoy: [String] = []
        for (shim, outcome) in zip(shims, outcomes) {
            switch outcome {
            case .failed(let reason):
                failed += 1
                FileHandle.standardError.write(Data("edshim resync: pid \(shim.owner.pid) \(shim.arguments.key): \(reason)\n".utf8))
            case .awaitingEnvoy(let reason):
                awaitingEnvoy.append(reason)
            case .registered, .vanished:
                break
            }
        }
        let total = shims.count - vanished
        if let reason = awaitingEnvoy.first {
            // Registered, and kept by the server: Envoy is not running (as while
            // systemd restarts both), not a failure to restore anything.
            FileHandle.standardError.write(Data("edshim resync: Envoy does not listen yet on \(awaitingEnvoy.count) of them: \(reason)\n".utf8))
            print("resynced \(total - failed) of \(total) (\(awaitingEnvoy.count) wait for Envoy)")
        } else {
            print("resynced \(total - failed) of \(total)")
        }
        if failed > 0 { throw ExitCode.failure }
    }

    private func waitForServer(_ client: ServerClient) throws {
        let deadline = Deadline.after(milliseconds: Int64(wait * 1000))
        while true {
            do {
                _ = try client.exchange(.list, deadline: .after(milliseconds: 2000))
                return
            } catch {
                // A file that is no socket, or one this user may not use, stays so.
                if let problem = client.lastingProblem { throw CommandFailure(problem) }
                if deadline.hasPassed { throw CommandFailure("\(error.description) (waited \(wait) s)") }
                Thread.sleep(forTimeInterval: 0.1)
            }
        }
    }
}
