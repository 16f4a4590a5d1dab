#if canImport(Glibc)
import Glibc
#endif

/// A client's address, and the local address it sent to, as the flow table keys them:
/// compact, cheap to hash and compare.
struct FlowKey: Equatable {
    var high: UInt64
    var low: UInt64
    var portAndFamily: UInt32
    /// The IPv6 scope (interface index) of a link-local client, else 0: fe80::1 on one
    /// link is not fe80::1 on another.
    var scope: UInt32
    /// The local address the client sent to (`none` on a socket bound to one
    /// address): one client talking to two addresses of the host has two flows, each
    /// answered from its own address.
    var destination: ReplySource

    /// The key of an AF_INET or AF_INET6 socket address, sending to `destination`.
    init(_ address: UnsafePointer<sockaddr_in6>, destination: ReplySource = .none) {
        self.destination = destination
        let raw = UnsafeRawPointer(address)
        let family = raw.load(as: sa_family_t.self)
        let port = raw.load(fromByteOffset: 2, as: UInt16.self)
        if Int32(family) == AF_INET {
            high = 0
            low = UInt64(raw.load(fromByteOffset: 4, as: UInt32.self))
            scope = 0
        } else {
            high = raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
            low = raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self)
            scope = address.pointee.sin6_scope_id
        }
        portAndFamily = UInt32(port) | UInt32(family) << 16
    }
}

/// One client's flow: its own connected upstream socket (so the container's replies
/// come back to this client only), where to answer (its key's destination is where
/// the replies leave from), and its place in the LRU order.
struct Flow {
    var key: FlowKey
    var upstream: Int32
    var client: sockaddr_in6
    var clientLength: socklen_t
    var lastActive: Int64
    fileprivate var older: Int32 = -1
    fileprivate var newer: Int32 = -1
}

/// The proxy's flows, by client address and the local address it sent to, in
/// least-recently-used order.
///
/// Slots are indices into one array that grows by doubling up to `limit` (so an idle
/// proxy holds a few, a busy one never more than its limit); the index is open
/// addressing with linear probing over slot numbers, hashed with a per-process seed
/// so clients cannot choose colliding addresses. Pure bookkeeping: the caller opens
/// and closes the sockets.
final class UDPFlowTable {
    /// The most flows there may be.
    let limit: Int
    /// The flows there are.
    private(set) var count = 0

    private var flows: UnsafeMutablePointer<Flow>
    private var capacity: Int
    private var initialized = 0
    private var freeHead: Int32 = -1
    private var index: UnsafeMutablePointer<Int32>
    private var indexMask: Int
    private var newest: Int32 = -1
    private var oldest: Int32 = -1
    private let seed = UInt64.random(in: .min ... .max)

    /// An empty table for at most `limit` flows.
    init(limit: Int) {
        self.limit = max(1, limit)
        capacity = min(self.limit, 16)
        flows = .allocate(capacity: capacity)
        indexMask = Self.indexSize(for: capacity) - 1
        index = .allocate(capacity: indexMask + 1)
        index.initialize(repeating: -1, count: indexMask + 1)
    }

    deinit {
        flows.deinitialize(count: initialized)
        flows.deallocate()
        index.deallocate()
    }

    /// The flow in `slot`, to read or update in place.
    subscript(slot: Int32) -> UnsafeMutablePointer<Flow> {
        flows + Int(slot)
    }

    /// The slot of the client's flow, or -1.
    func find(_ key: FlowKey) -> Int32 {
        var position = home(of: key)
        while true {
            let slot = index[position]
            if slot < 0 || flows[Int(slot)].key == key { return slot }
            position = (position + 1) & indexMask
        }
    }

    /// Adds a flow as the most recently used; the table must not be full.
    func insert(_ key: FlowKey, upstream: Int32, client: UnsafePointer<sockaddr_in6>, clientLength: socklen_t, now: Int64) -> Int32 {
        precondition(count < limit, "the caller evicts before inserting into a full flow table")
        let flow = Flow(key: key, upstream: upstream, client: client.pointee, clientLength: clientLength, lastActive: now)
        let slot: Int32
        if freeHead >= 0 {
            slot = freeHead
            freeHead = flows[Int(slot)].older
            flows[Int(slot)] = flow
        } else {
            if initialized == capacity { grow() }
            slot = Int32(initialized)
            (flows + initialized).initialize(to: flow)
            initialized += 1
        }
        var position = home(of: key)
        while index[position] >= 0 { position = (position + 1) & indexMask }
        index[position] = slot
        count += 1
        linkAsNewest(slot)
        return slot
    }

    /// Marks the flow used now.
    func touch(_ slot: Int32, now: Int64) {
        flows[Int(slot)].lastActive = now
        guard slot != newest else { return }
        unlink(slot)
        linkAsNewest(slot)
    }

    /// The least recently used flow, or -1 when there is none.
    var leastRecentlyUsed: Int32 { oldest }

    /// The least recently used flow when it has been idle for `idle` ms at `now`, or -1.
    func expired(now: Int64, idle: Int64) -> Int32 {
        guard oldest >= 0, now - flows[Int(oldest)].lastActive >= idle else { return -1 }
        return oldest
    }

    /// Milliseconds until the next flow expires (for poll), -1 when there is none.
    func millisecondsToNextExpiry(now: Int64, idle: Int64) -> Int32 {
        guard oldest >= 0 else { return -1 }
        let remaining = flows[Int(oldest)].lastActive + idle - now
        return Int32(clamping: max(0, remaining))
    }

    /// Removes the flow; returns its upstream socket for the caller to close.
    func remove(_ slot: Int32) -> Int32 {
        let upstream = flows[Int(slot)].upstream
        var position = home(of: flows[Int(slot)].key)
        while index[position] != slot { position = (position + 1) & indexMask }
        deleteIndexEntry(at: position)
        unlink(slot)
        flows[Int(slot)].upstream = -1
        flows[Int(slot)].older = freeHead
        freeHead = slot
        count -= 1
        return upstream
    }

    /// Every flow's upstream socket (to close them all when stopping).
    func forEachUpstream(_ body: (Int32) -> Void) {
        var slot = newest
        while slot >= 0 {
            body(flows[Int(slot)].upstream)
            slot = flows[Int(slot)].older
        }
    }

    // MARK: LRU list: newest ← newer … older → oldest

    private func linkAsNewest(_ slot: Int32) {
        flows[Int(slot)].newer = -1
        flows[Int(slot)].older = newest
        if newest >= 0 { flows[Int(newest)].newer = slot }
        newest = slot
        if oldest < 0 { oldest = slot }
    }

    private func unlink(_ slot: Int32) {
        let older = flows[Int(slot)].older
        let newer = flows[Int(slot)].newer
        if older >= 0 { flows[Int(older)].newer = newer } else { oldest = newer }
        if newer >= 0 { flows[Int(newer)].older = older } else { newest = older }
        flows[Int(slot)].older = -1
        flows[Int(slot)].newer = -1
    }

    // MARK: Index

    private static func indexSize(for capacity: Int) -> Int {
        var size = 32
        while size < capacity * 2 { size <<= 1 }
        return size
    }

    private func home(of key: FlowKey) -> Int {
        var hash = Self.mix(seed ^ key.high)
        hash = Self.mix(hash ^ key.low)
        hash = Self.mix(hash ^ (UInt64(key.portAndFamily) | UInt64(key.scope) << 32))
        if key.destination.family != 0 {
            hash = Self.mix(hash ^ key.destination.high)
            hash = Self.mix(hash ^ key.destination.low)
            hash = Self.mix(hash ^ (UInt64(key.destination.interface) | UInt64(UInt32(bitPattern: key.destination.family)) << 32))
        }
        return Int(truncatingIfNeeded: hash) & indexMask
    }

    /// splitmix64's finalizer.
    private static func mix(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Backward-shift deletion: no tombstones, so lookups never slow down with churn.
    private func deleteIndexEntry(at position: Int) {
        var hole = position
        var next = (position + 1) & indexMask
        while index[next] >= 0 {
            let ideal = home(of: flows[Int(index[next])].key)
            let distanceFromIdeal = (next - ideal) & indexMask
            let distanceFromHole = (next - hole) & indexMask
            if distanceFromIdeal >= distanceFromHole {
                index[hole] = index[next]
                hole = next
            }
            next = (next + 1) & indexMask
        }
        index[hole] = -1
    }

    private func grow() {
        let newCapacity = min(limit, capacity * 2)
        let newFlows = UnsafeMutablePointer<Flow>.allocate(capacity: newCapacity)
        newFlows.moveInitialize(from: flows, count: initialized)
        flows.deallocate()
        flows = newFlows
        capacity = newCapacity
        let size = Self.indexSize(for: newCapacity)
        guard size > indexMask + 1 else { return }
        index.deallocate()
        index = .allocate(capacity: size)
        index.initialize(repeating: -1, count: size)
        indexMask = size - 1
        var slot = newest
        while slot >= 0 {
            var position = home(of: flows[Int(slot)].key)
            while index[position] >= 0 { position = (position + 1) & indexMask }
            index[position] = slot
            slot = flows[Int(slot)].older
        }
    }
}
