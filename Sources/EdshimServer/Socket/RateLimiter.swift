/// A token bucket per peer process: a shim sends two requests in its life, resync one
/// per shim; a peer that sends far more is told to slow down (`rate_limited`).
actor RateLimiter {
    private struct Bucket {
        var tokens: Double
        var refilled: ContinuousClock.Instant
    }

    private let capacity: Double
    private let perSecond: Double
    private var buckets: [Int32: Bucket] = [:]
    /// Forgetting full buckets happens when this many peers are tracked; it grows
    /// with the peers still limited, so a busy host does not prune on every request.
    private var pruneAt = RateLimiter.pruneThreshold
    static let pruneThreshold = 10_000

    init(capacity: Double, perSecond: Double) {
        self.capacity = capacity
        self.perSecond = perSecond
    }

    /// The peers whose buckets are remembered (a full bucket need not be).
    var trackedPeers: Int { buckets.count }

    /// Takes one token for `pid`; false when its bucket is empty.
    func admit(_ pid: Int32) -> Bool {
        let now = ContinuousClock.now
        var bucket = buckets[pid] ?? Bucket(tokens: capacity, refilled: now)
        bucket.tokens = tokens(in: bucket, at: now)
        bucket.refilled = now
        let admitted = bucket.tokens >= 1
        if admitted { bucket.tokens -= 1 }
        buckets[pid] = bucket
        if buckets.count > pruneAt {
            // A bucket that has refilled is what a new peer would get: forget it
            // (every PID is a new peer: each shim, status and resync).
            buckets = buckets.filter { tokens(in: $0.value, at: now) < capacity }
            pruneAt = max(Self.pruneThreshold, buckets.count * 2)
        }
        return admitted
    }

    private func tokens(in bucket: Bucket, at now: ContinuousClock.Instant) -> Double {
        let elapsed = now - bucket.refilled
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return min(capacity, bucket.tokens + seconds * perSecond)
    }
}
