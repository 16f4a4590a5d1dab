import CEdshimLinux
import EdshimCore
#if canImport(Glibc)
import Glibc
#endif

/// The UDP proxy: one thread, one epoll set, datagrams moved in batches.
///
/// Each client address gets a flow with its own upstream socket connected to the
/// container, so the container's replies on it belong to that client alone and the
/// kernel drops anything else arriving there. Flows are kept in least-recently-used
/// order: one idle for the timeout is closed, and at the limit the least recently
/// used makes room for a new client. ICMP "port unreachable" from the container
/// surfaces as ECONNREFUSED on the flow's socket; it is read and forgotten, never a
/// reason to drop the flow (the container may just be starting).
final class UDPProxy {
    private static let listenerToken = UInt64.max
    private static let signalToken = UInt64.max - 1
    /// Batches read from one socket before the others get their turn.
    private static let roundsPerWakeup = 4
    /// Ready descriptors taken per epoll_wait.
    private static let eventCapacity: Int32 = 64

    private let listener: UDPListener
    private let container: SocketEndpoint
    private let idleTimeout: Int64
    private let signals: TerminationSignals
    /// Carries the port on through a dockerd restart (nil: every signal stops it).
    private let handover: UDPHandover?
    private let epoll: Int32
    private let flows: UDPFlowTable
    private let batch: DatagramBatch
    private let sender = SegmentingSender()
    private let tokens: UnsafeMutablePointer<UInt64>
    /// Replies received into the batch and not yet sent to their clients.
    private var pendingReplies = 0
    private var busyPoll: BusyPoll
    /// Tells the replies of one read apart from the next (see `DatagramBatch.groups`).
    private var replyGroup: Int32 = 0
    private var warnings: UDPProxyWarnings
    /// The last shortage of descriptors or local ports: what ran out, at how many
    /// flows, and until when (milliseconds) it is trusted. Meanwhile a new client takes
    /// the least recently used flow before a socket is opened for it, not after a
    /// system call that would fail again: a connect() that finds no free local port has
    /// scanned the whole range (~20 ms on a full one), while every flow waits.
    private var lastShortage: (what: String, remedy: String, flows: Int, until: Int64)?

    /// Sets up the proxy around a prepared listener; nothing is read yet.
    init(listener: UDPListener, container: SocketEndpoint, options: UDPProxyOptions, signals: TerminationSignals, handover: UDPHandover? = nil) throws(ShimFailure) {
        self.listener = listener
        self.container = container
        self.idleTimeout = options.idleTimeoutMilliseconds
        self.signals = signals
        self.handover = handover
        warnings = UDPProxyWarnings(host: listener.endpoint, container: container)
        busyPoll = BusyPoll(windowMicroseconds: options.busyPollMicroseconds)
        batch = try DatagramBatch()
        flows = UDPFlowTable(limit: options.maxFlows)
        epoll = edshim_epoll_create()
        guard epoll >= 0 else { throw .system("epoll_create1") }
        tokens = .allocate(capacity: Int(Self.eventCapacity))
        guard edshim_epoll_watch(epoll, listener.descriptor, Self.listenerToken) == 0,
              edshim_epoll_watch(epoll, signals.descriptor, Self.signalToken) == 0 else {
            throw .system("epoll_ctl")
        }
        DescriptorLimit.raise(toward: options.maxFlows + 64)
    }

    deinit {
        flows.forEachUpstream { close($0) }
        close(epoll)
        tokens.deallocate()
    }

    /// Moves datagrams until SIGINT or SIGTERM (true; through a dockerd restart, until
    /// the handover ends), or until waiting for them fails (false: logged; only a
    /// fault in the proxy itself makes epoll_wait fail).
    func run() -> Bool {
        // What the warnings held back is said before the shim exits.
        defer { warnings.logHeldBack(now: Self.microseconds() / 1000, final: true) }
        var clock = Self.microseconds()
        while true {
            let polling = busyPoll.isPolling(at: clock)
            let timeout = polling ? 0 : Self.sooner(Self.sooner(
                flows.millisecondsToNextExpiry(now: clock / 1000, idle: idleTimeout),
                handover?.millisecondsToNextLook(now: clock / 1000) ?? -1
            ), warnings.millisecondsToHeldBackLines(now: clock / 1000))
            let ready = edshim_epoll_wait(epoll, tokens, Self.eventCapacity, timeout)
            clock = Self.microseconds()
            if ready < 0 {
                if errno == EINTR { continue }
                ShimLog.error("epoll_wait: \(ErrorText.describe(errno)); stopping")
                return false
            }
            if ready == 0, polling {
                sched_yield()
                continue
            }
            // With every event slot taken, the signal may wait behind thousands of busy
            // flows (epoll hands them out in turn): look for it each time.
            if ready == Self.eventCapacity, stopsForSignal() { return true }
            let now = clock / 1000
            for event in 0..<Int(ready) {
                switch tokens[event] {
                case Self.signalToken:
                    if stopsForSignal() { return true }
                case Self.listenerToken:
                    flushReplies()
                    forwardFromClients(now: now)
                    busyPoll.noteActivity(at: clock)
                case let token:
                    collectReplies(slot: Int32(truncatingIfNeeded: token), now: now)
                    busyPoll.noteActivity(at: clock)
                }
            }
            flushReplies()
            // Once what this wakeup brought is on its way: a proxy handing its port to
            // the next dockerd's leaves nothing it had read unsent.
            if handover?.isOver(now: now) == true { return true }
            while case let slot = flows.expired(now: now, idle: idleTimeout), slot >= 0 {
                close(flows.remove(slot))
            }
            warnings.logHeldBack(now: now)
        }
    }

    /// Takes a pending signal: true when it stops the proxy (any, unless the handover
    /// carries the port on through dockerd's restart).
    private func stopsForSignal() -> Bool {
        guard let signal = signals.takeSignal() else { return false }
        // A proxy carrying its port through a dockerd restart says itself why it ends.
        let carrying = handover?.isCarrying ?? false
        if handover?.keepsServing(after: signal) == true { return false }
        if !carrying {
            // 0: the kernel's own; this process's: no one else to name.
            let known = signal.sender > 0 && signal.sender != getpid()
            let sender = known ? " from pid \(signal.sender)" + (ProcessTable.name(of: signal.sender).map { " (\($0))" } ?? "") : ""
            ShimLog.info("udp \(listener.endpoint) → \(container): stopped by signal \(signal.number)\(sender)")
        }
        return true
    }

    /// The shorter of two epoll timeouts, -1 meaning none.
    private static func sooner(_ first: Int32, _ second: Int32) -> Int32 {
        first < 0 ? second : second < 0 ? first : min(first, second)
    }

    // MARK: Client → container

    /// Reads client datagrams and sends each run of consecutive datagrams from one
    /// client to its flow's socket in one sendmmsg. A run is sent before a new flow
    /// is opened, since opening may evict the least recently used flow.
    private func forwardFromClients(now: Int64) {
        let capacity = DatagramBatch.capacity
        let withSource = listener.answersFromDestination
        for _ in 0..<Self.roundsPerWakeup {
            batch.prepareToReceive(0..<capacity, withNames: true, withControl: withSource || listener.coalesces)
            let count = batch.receive(listener.descriptor, into: 0..<capacity)
            guard count > 0 else { return }
            if listener.coalesces { batch.readCoalescing(0..<count) }
            var runStart = 0
            var runSlot: Int32 = -1
            var runKey: FlowKey?
            for index in 0..<count {
                let key = FlowKey(batch.sender(at: index), destination: withSource ? ReplySource(receivedWith: batch.header(at: index)) : .none)
                if key != runKey {
                    forward(runStart..<index, slot: runSlot)
                    runStart = index
                    runKey = key
                    var slot = flows.find(key)
                    if slot < 0 { slot = openFlow(for: index, key: key, now: now) }
                    if slot >= 0 { flows.touch(slot, now: now) }
                    runSlot = slot
                }
                batch.addressToPeer(at: index)
            }
            forward(runStart..<count, slot: runSlot)
            if count < capacity { return }
        }
    }

    private func forward(_ range: Range<Int>, slot: Int32) {
        guard slot >= 0, !range.isEmpty else { return }
        sender.send(range, of: batch, on: flows[slot].pointee.upstream)
        logDropped(toward: "\(container)")
    }

    /// A new flow for the sender of datagram `index`: a socket connected to the
    /// container, watched for replies. -1 when none can be opened (the datagram is
    /// dropped). A flow is evicted only for a socket that is ready to take its place:
    /// at the flow limit, or when the host is out of descriptors or local ports.
    private func openFlow(for index: Int, key: FlowKey, now: Int64) -> Int32 {
        var evicted = false
        if let shortage = lastShortage, now < shortage.until, flows.count >= shortage.flows, flows.count > 0 {
            evictForShortage(what: shortage.what, remedy: shortage.remedy, now: now)
            evicted = true
        }
        var upstream = connectUpstream()
        var failure = errno
        // One flow given up per new client at most.
        if upstream < 0, !evicted, let shortage = Self.shortage(failure, flows: flows.count), flows.count > 0 {
            lastShortage = (shortage.what, shortage.remedy, flows.count, now + Self.shortageTrustedMilliseconds)
            evictForShortage(what: shortage.what, remedy: shortage.remedy, now: now)
            upstream = connectUpstream()
            failure = errno
        }
        guard upstream >= 0 else {
            // A shortage with no flow to give up (or none left) is still a shortage:
            // said as such, not as the bare errno (EAGAIN: "Resource temporarily unavailable").
            let reason = Self.shortage(failure, flows: flows.count).map { "\($0.what): \($0.remedy)" } ?? ErrorText.describe(failure)
            logFailure("opening a socket to \(container): \(reason)", now: now)
            return -1
        }
        if flows.count >= flows.limit {
            close(flows.remove(flows.leastRecentlyUsed))
            warnings.warn(.eviction, "flow limit (\(flows.limit)) reached, a new client took the flow of the least recently used one; raise EDSHIM_UDP_MAX_FLOWS or --max-flows if clients miss replies", now: now)
        }
        let slot = flows.insert(key, upstream: upstream, client: batch.sender(at: index), clientLength: batch.senderLength(at: index), now: now)
        guard edshim_epoll_watch(epoll, upstream, UInt64(slot)) == 0 else {
            logFailure("watching a flow's socket: \(ErrorText.describe(errno))", now: now)
            close(flows.remove(slot))
            return -1
        }
        return slot
    }

    /// Gives the least recently used flow's socket up for a new client's, the host
    /// being short of `what` (descriptors, local ports).
    private func evictForShortage(what: String, remedy: String, now: Int64) {
        close(flows.remove(flows.leastRecentlyUsed))
        warnings.warn(.shortage, "\(what) at \(flows.count + 1) flows, a new client took the flow of the least recently used one; \(remedy)", now: now)
    }

    /// How long a shortage is taken for granted before a new client's socket is tried
    /// first again (flows that expired or other programs may have freed some).
    static let shortageTrustedMilliseconds: Int64 = 1000

    /// What ran out when opening a flow's socket failed with `code`, the proxy holding
    /// `flows` flows, and what to do about it; nil for failures a flow given up would
    /// not cure. With no flow, the local ports are all held by other sockets: lowering
    /// this proxy's flow limit would not help.
    private static func shortage(_ code: Int32, flows: Int) -> (what: String, remedy: String)? {
        switch code {
        case EMFILE: ("out of file descriptors", "raise the open-files limit, LimitNOFILE= in dockerd's unit")
        case ENFILE: ("out of file descriptors", "the system's file table is full, see fs.file-max")
        // connect() binds the socket to a local port first: EAGAIN when none is free.
        // (EADDRNOTAVAIL is no source address toward the container, which a flow given
        // up would not cure.)
        case EAGAIN where flows == 0: ("out of local ports", "every port of net.ipv4.ip_local_port_range is in use by other programs' UDP sockets, this proxy holding no flow (ss -uanp shows them; other UDP proxies' flows among them): widen the range, or lower those proxies' EDSHIM_UDP_MAX_FLOWS")
        case EAGAIN: ("out of local ports", "every port of net.ipv4.ip_local_port_range is in use: lower EDSHIM_UDP_MAX_FLOWS or --max-flows, or widen the range")
        default: nil
        }
    }

    /// A flow socket's buffers, each way: the replies to a whole batch of the client's
    /// datagrams arrive before the proxy reads them, and a batch of large datagrams
    /// toward the container (a 60,000-byte one is ~41 fragments, ~95 KiB of buffer)
    /// is sent without waiting; the kernel's default, ~208 KiB, holds two or three.
    /// Memory is taken only while datagrams wait.
    static let flowBufferBytes: Int32 = 1 << 20

    private func connectUpstream() -> Int32 {
        let fd = socket(container.family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return -1 }
        edshim_socket_buffer(fd, 1, Self.flowBufferBytes)
        edshim_socket_buffer(fd, 0, Self.flowBufferBytes)
        if listener.coalesces { _ = edshim_enable_receive_coalescing(fd) }
        guard container.withSocketAddress({ connect(fd, $0, $1) }) == 0 else {
            let code = errno
            close(fd)
            errno = code
            return -1
        }
        return fd
    }

    // MARK: Container → client

    /// Reads the replies waiting on a flow's socket into the batch, addressed to the
    /// flow's client from the address it sent to; full batches go out at once.
    private func collectReplies(slot: Int32, now: Int64) {
        let capacity = DatagramBatch.capacity
        let upstream = flows[slot].pointee.upstream
        guard upstream >= 0 else { return }
        for _ in 0..<Self.roundsPerWakeup {
            if pendingReplies == capacity { flushReplies() }
            let room = pendingReplies..<capacity
            batch.prepareToReceive(room, withNames: false, withControl: listener.coalesces)
            let count = batch.receive(upstream, into: room)
            // 0: drained; -1: a reported ICMP error, now cleared. The flow stays.
            guard count > 0 else { return }
            let received = pendingReplies..<(pendingReplies + count)
            if listener.coalesces { batch.readCoalescing(received) }
            flows.touch(slot, now: now)
            let flow = flows[slot]
            replyGroup &+= 1
            for index in received {
                batch.address(at: index, to: &flow.pointee.client, length: flow.pointee.clientLength, from: flow.pointee.key.destination, group: replyGroup)
            }
            pendingReplies += count
            if count < room.count { return }
        }
    }

    private func flushReplies() {
        guard pendingReplies > 0 else { return }
        sender.send(0..<pendingReplies, of: batch, on: listener.descriptor)
        pendingReplies = 0
        logDropped(toward: "clients")
    }

    /// Says when the kernel refused datagrams just sent (EMSGSIZE: more than 65,507
    /// bytes from an IPv6 client to an IPv4 container; no route; a full send buffer),
    /// which are dropped.
    private func logDropped(toward destination: @autoclosure () -> String) {
        guard let dropped = sender.takeDropped() else { return }
        let now = Self.microseconds() / 1000
        if dropped.reason == EBADMSG {
            warnings.warn(.cutShortBurst, "\(dropped.count) burst(s) of datagrams to \(destination()) dropped: received with their control messages cut short (options turned on on the port's socket take the room), so where each datagram ends was unknown", now: now, count: dropped.count)
            return
        }
        warnings.warn(.refusedSend, "\(dropped.count) datagram(s) to \(destination()) refused by the kernel (\(Self.refusal(dropped.reason))) and dropped", now: now, count: dropped.count)
    }

    private static func refusal(_ code: Int32) -> String {
        switch code {
        case EAGAIN, ENOBUFS: "the socket's send buffer is full"
        default: ErrorText.describe(code)
        }
    }

    // MARK: Support

    /// `message` is built only when the throttle lets a line out: a container that
    /// cannot be reached fails every datagram.
    private func logFailure(_ message: @autoclosure () -> String, now: Int64) {
        warnings.warn(.openFailure, message() + "; the datagram was dropped", now: now)
    }

    private static func microseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_nsec) / 1000
    }

}
