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

    init(capacity: Double, perSecond: Double) {
        self.capacity = capacity
        self.perSecond = perSecond
    }

    /// Takes one token for `pid`; false when its bucket is empty.
    func admit(_ pid: Int32) -> Bool {
        let now = ContinuousClock.now
        var bucket = buckets[pid] ?? Bucket(tokens: capacity, refilled: now)
        let elapsed = now - bucket.refilled
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        bucket.tokens = min(capacity, bucket.tokens + seconds * perSecond)
        bucket.refilled = now
        let admitted = bucket.tokens >= 1
        if admitted { bucket.tokens -= 1 }
        buckets[pid] = bucket
        if buckets.count > 10_000 { buckets = buckets.filter { $0.value.tokens < capacity } }
        return admitted
    }
}
