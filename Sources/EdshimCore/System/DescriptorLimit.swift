#if canImport(Glibc)
import Glibc
#endif

/// The process's open-files limit. dockerd may leave its proxies' soft limit low
/// (1024) while the hard one is high, and so may a shell for a server started by hand:
/// a shim that holds one descriptor per UDP flow or per relayed TCP connection, and a
/// server that holds one per registered shim and per client connection, raise the
/// soft limit as far as they need, up to the hard one.
public enum DescriptorLimit {
    /// Raises the soft limit towards `count` (never above the hard limit).
    public static func raise(toward count: Int) {
        var limit = rlimit()
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        guard getrlimit(resource, &limit) == 0, limit.rlim_cur < rlim_t(count) else { return }
        limit.rlim_cur = min(rlim_t(count), limit.rlim_max)
        _ = setrlimit(resource, &limit)
    }

    /// The soft limit now (`Int.max` when unlimited: RLIM_INFINITY is all ones).
    public static var current: Int {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        return limit.rlim_cur >= rlim_t(Int.max) ? Int.max : Int(limit.rlim_cur)
    }
}
