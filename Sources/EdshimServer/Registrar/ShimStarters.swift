import EdshimCore

/// The process each registered shim ran under when it registered: its dockerd (or
/// whoever started it by hand). A shim still under that process publishes its port
/// for it, and a shim another process starts for the same port is refused, as
/// docker-proxy's bind would be. A shim whose dockerd exited (the kernel gave it to
/// init or to a subreaper) waits for the next dockerd's shim to take its port over
/// (`EDSHIM_DOCKERD_RESTART_GRACE`), and one that exited is simply replaced.
struct ShimStarters {
    private var starters: [Owner: Owner] = [:]

    /// Notes the process `shim` runs under now, unless noted before (resync registers
    /// on behalf of a shim whose dockerd may have exited since).
    mutating func note(_ shim: Owner) {
        guard starters[shim] == nil else { return }
        starters[shim] = ProcessTable.starter(of: shim.pid)
    }

    /// Forgets `shim` (no registration of its own left).
    mutating func forget(_ shim: Owner) {
        starters[shim] = nil
    }

    /// The process `shim` still runs under, if `shim` runs and has not been handed on
    /// since it registered: nil once it exited, or was given to init (PID 1) or to
    /// another process than the one noted. A shim restored from the state file, not
    /// noted by this server, counts as handed on only once under init.
    func starter(of shim: Owner) -> Owner? {
        guard ProcessTable.liveness(of: shim) == .running, let current = ProcessTable.starter(of: shim.pid) else { return nil }
        if let noted = starters[shim], noted != current { return nil }
        return current
    }
}
