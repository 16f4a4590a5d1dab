#if canImport(Glibc)
import Glibc
#endif

/// The shim's open-files limit. dockerd may leave the soft limit low (1024) while the
/// hard one is high; a shim that holds one descriptor per UDP flow or per relayed TCP
/// connection raises the soft limit as far as it needs, up to the hard one.
enum DescriptorLimit {
    /// Raises the soft limit towards `count` (never above the hard limit).
    static func raise(toward count: Int) {
        var limit = rlimit()
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        guard getrlimit(resource, &limit) == 0, limit.rlim_cur < rlim_t(count) else { return }
        limit.rlim_cur = min(rlim_t(count), limit.rlim_max)
        _ = setrlimit(resource, &limit)
    }
}
