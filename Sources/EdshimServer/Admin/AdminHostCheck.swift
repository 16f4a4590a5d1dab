import EdshimCore

/// The `Host` a request to the admin endpoint names, checked when the endpoint is on
/// loopback: a web page opened on this host whose name an attacker points at
/// 127.0.0.1 (DNS rebinding) would otherwise read `/status` (containers' names,
/// labels and addresses) through the browser. Such a request names the attacker's
/// host; probes and `curl` name an address, or `localhost`.
enum AdminHostCheck {
    /// Why a request naming `host` is refused at `address`, or nil: only on a loopback
    /// address, only a `Host` that is neither an IP address nor `localhost` (with or
    /// without a port). A request without one (HTTP/1.0) passes.
    static func refusal(host: String?, at address: AdminAddress) -> String? {
        guard case .tcp(let endpoint) = address, endpoint.ip.isLoopback, let host, !host.isEmpty else { return nil }
        let name: Substring
        if host.hasPrefix("["), let close = host.firstIndex(of: "]") {
            name = host[host.index(after: host.startIndex)..<close]
        } else {
            name = host.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        }
        guard IPAddress(String(name)) == nil, name.lowercased() != "localhost" else { return nil }
        return "edshim admin: Host \(ErrorText.quoted(host)) is not this loopback endpoint's (a web page's request through a rebound DNS name?): ask http://\(endpoint)/ by address\n"
    }
}
