import Logging

/// Reads the labels of the container behind a container address from the Docker
/// Engine API.
///
/// The container is found through the networks' endpoint lists, which already show a
/// container dockerd is still starting (it starts the proxy, and waits for it, before
/// the container runs); its labels come from the container list, which has them from
/// creation on. Neither call waits on the starting container.
///
/// Never fails a registration: the container not found gives `.unknown`, Docker
/// unreachable `.unreachable` (the service is then named `unknown-<port>` until the
/// server asks again), each cause logged once. The lookup retries briefly within
/// `budget` and caches labels per container.
public actor DockerMetadataSource: ContainerMetadataSource {
    private let client: DockerEngineClient
    private let logger: Logger
    private let budget: Duration
    private var version: String?
    private var labelsByContainer: [String: ContainerMetadata] = [:]
    private var unreachableReported = false
    /// After Docker failed, lookups are skipped until then, or until `isReachable`
    /// finds Docker answering: an outage must not slow every registration down by a
    /// timeout.
    private var quietUntil: ContinuousClock.Instant?
    /// Whether a ping that Docker answers ends the pause for a lookup (`answersPingAtOnce`):
    /// not after a lookup so allowed failed (a dockerd answering pings but not
    /// lookups), until `isReachable` finds the lookups' calls answered again.
    private var pingsEndThePause = true
    /// Failed lookups so far: a probe that began before one must not end its pause.
    private var failures = 0
    /// The last ping made during a pause, and whether Docker answered it.
    private var lastPing: (at: ContinuousClock.Instant, answered: Bool)?
    private let retryAfterFailure: Duration
    private var notFoundReported: Set<IPAddress> = []

    /// A source reading from `client`, spending at most `budget` per lookup.
    public init(client: DockerEngineClient, logger: Logger, budget: Duration = .milliseconds(500), retryAfterFailure: Duration = .seconds(5)) {
        self.client = client
        self.logger = logger
        self.budget = budget
        self.retryAfterFailure = retryAfterFailure
    }

    /// How long a lookup may take in all, its calls to Docker included: the
    /// registration waits for it, and its answer must reach the shim in time
    /// (`EdshimDefaults.shimRegisterTimeoutSeconds`; the server stops waiting for Envoy in time for it).
    static let longestLookup = Duration.seconds(2)

    /// What the labels of the container serving at `container` say.
    public func metadata(for container: SocketEndpoint) async -> MetadataAnswer {
        // Paused after a failure: asked all the same when Docker answers a ping at
        // once. After a restart dockerd opens its API while the lookups of the
        // containers it restored are still timing out; a container started then must
        // not be named unknown-<port> until `LabelRefresher` comes round.
        var askedAfterPing = false
        if let quietUntil, ContinuousClock.now < quietUntil {
            guard pingsEndThePause, await answersPingAtOnce() else { return .unreachable }
            askedAfterPing = true
        }
        let deadline = ContinuousClock.now + budget
        let client = self.client.until(ContinuousClock.now + Self.longestLookup)
        var pause = Duration.milliseconds(25)
        while true {
            do throws(DockerEngineClient.Failure) {
                let found = try await lookup(container.ip, client: client)
                // Docker answered: no more pause (it began after an earlier failure).
                quietUntil = nil
                pingsEndThePause = true
                if let found {
                    if unreachableReported {
                        logger.notice("Docker is reachable again; labels are read", metadata: ["docker_host": "\(client.host)"])
                        unreachableReported = false
                    }
                    notFoundReported.remove(container.ip)
                    return .known(found)
                }
            } catch {
                // Cancelled (the server is stopping): that says nothing about Docker.
                if Task.isCancelled { return .unreachable }
                version = nil
                failures += 1
                quietUntil = ContinuousClock.now + retryAfterFailure
                if askedAfterPing { pingsEndThePause = false }
                if !unreachableReported {
                    logger.warning("cannot read container labels from Docker; a port published meanwhile is named unknown-<port> (unknown-<port>-<address> on one address) until it answers, unless it takes over the registration of the same container address (a restarting dockerd's containers), whose name it keeps", metadata: [
                        "docker_host": "\(client.host)", "error": "\(error)",
                    ])
                    unreachableReported = true
                }
                return .unreachable
            }
            guard ContinuousClock.now + pause < deadline else { break }
            try? await Task.sleep(for: pause)
            pause = min(pause * 2, .milliseconds(200))
        }
        if notFoundReported.count < 4096, notFoundReported.insert(container.ip).inserted {
            logger.warning("no Docker container has this address; its service is named unknown-<port> (unknown-<port>-<address> on one address)", metadata: [
                "container_ip": "\(container.ip)",
            ])
        }
        return .known(.unknown)
    }

    /// Asks Docker for its API version (`/_ping`) and, while lookups pause after a
    /// failure, for the two lists a lookup reads (networks, and containers: by an id
    /// no container has): when Docker answers them all, lookups resume at once
    /// rather than at the end of the pause. A dockerd
    /// that answers pings but not lookups (busy restoring its containers) must not
    /// slow every registration down by a timeout; one that answers again must not
    /// have the containers started right after named `unknown-<port>`.
    public func isReachable() async -> Bool {
        do throws(DockerEngineClient.Failure) {
            let negotiated = try await client.negotiateVersion()
            version = negotiated
            guard quietUntil != nil else { return true }
            let failuresBefore = failures
            let networks = try await client.networks(version: negotiated)
            if let first = networks.first { _ = try await client.network(first.Id, version: negotiated) }
            _ = try await client.containers(id: String(repeating: "0", count: 64), version: negotiated)
            // A lookup that failed meanwhile says more than this probe.
            guard failures == failuresBefore else { return true }
            quietUntil = nil
            pingsEndThePause = true
            return true
        } catch {
            return false
        }
    }

    /// How long a ping during a pause may take: a dockerd that answers at all does
    /// within milliseconds, and one that hangs costs a registration no more.
    static let pingDuringPause = Duration.milliseconds(25)
    /// How long a ping's answer stands for the registrations after it: those that
    /// dockerd starts one after another while it hangs wait for one ping, not each.
    static let pingStands = Duration.milliseconds(100)

    /// Whether Docker answers `/_ping` within `pingDuringPause`, asked at most once
    /// per `pingStands`.
    private func answersPingAtOnce() async -> Bool {
        let now = ContinuousClock.now
        if let lastPing, now - lastPing.at < Self.pingStands { return lastPing.answered }
        var answered = false
        do throws(DockerEngineClient.Failure) {
            version = try await client.until(now + Self.pingDuringPause).negotiateVersion()
            answered = true
        } catch {}
        lastPing = (now, answered)
        return answered
    }

    private func lookup(_ ip: IPAddress, client: DockerEngineClient) async throws(DockerEngineClient.Failure) -> ContainerMetadata? {
        let version = try await negotiatedVersion(client)
        guard let (id, name) = try await findEndpoint(ip, version: version, client: client) else { return nil }
        if let cached = labelsByContainer[id] { return cached }
        let summary = try await client.containers(id: id, version: version).first { $0.Id == id }
        let containerName = summary?.Names.flatMap(Self.ownName) ?? name
        let reading = ContainerLabels.read(summary?.Labels ?? [:], containerID: id, containerName: containerName)
        for warning in reading.warnings { logger.warning("\(warning)") }
        if labelsByContainer.count >= 4096 { labelsByContainer.removeAll() }
        labelsByContainer[id] = reading.metadata
        return reading.metadata
    }

    /// The container's own name among the names Docker lists for it, which are sorted
    /// and hold its legacy link aliases too (`/app/db` for the `db` another container
    /// links to): the one with a single slash, as the Docker CLI shows it.
    public static func ownName(_ names: [String]) -> String? {
        let own = names.first { $0.hasPrefix("/") && !$0.dropFirst().contains("/") } ?? names.first
        return own.map { $0.hasPrefix("/") ? String($0.dropFirst()) : $0 }
    }

    private func negotiatedVersion(_ client: DockerEngineClient) async throws(DockerEngineClient.Failure) -> String {
        if let version { return version }
        let negotiated = try await client.negotiateVersion()
        version = negotiated
        return negotiated
    }

    /// The container id and endpoint name that hold `ip`, searching the networks whose
    /// subnets contain it first.
    private func findEndpoint(_ ip: IPAddress, version: String, client: DockerEngineClient) async throws(DockerEngineClient.Failure) -> (String, String?)? {
        let networks = try await client.networks(version: version)
        let likely = networks.filter { network in
            (network.IPAM?.Config ?? []).contains { $0.Subnet.flatMap(Subnet.init)?.contains(ip) == true }
        }
        let others = networks.filter { network in !likely.contains { $0.Id == network.Id } }
        for network in likely + others {
            // Removed since the list (404): it holds no container any more.
            guard let detail = try await client.network(network.Id, version: version) else { continue }
            for (id, endpoint) in detail.Containers ?? [:] {
                let addresses = [endpoint.IPv4Address, endpoint.IPv6Address].compactMap { $0 }
                if addresses.contains(where: { IPAddress(String($0.split(separator: "/").first ?? "")) == ip }) {
                    return (id, endpoint.Name)
                }
            }
        }
        return nil
    }
}
