/// How the UDP proxy bounds the flows it keeps: how long an idle one lives and how
/// many there may be at once (the least recently used goes first).
///
/// `edshim udp-proxy` takes them as `--idle-timeout` / `--max-flows`; the shim, whose
/// command line belongs to dockerd, reads them from dockerd's environment
/// (`EDSHIM_UDP_IDLE_TIMEOUT`, `EDSHIM_UDP_MAX_FLOWS`).
public struct UDPProxyOptions: Equatable, Sendable {
    /// docker-proxy's conntrack timeout: 90 s.
    public static let defaultIdleTimeoutMilliseconds: Int64 = 90_000
    /// Enough for a busy DNS service's clients, small enough that a spray of source
    /// ports costs at most this many sockets, and that the two shims of a port (0.0.0.0
    /// and ::), each flow holding a local port, take at most 16,384 of the 28,232 ports
    /// of the default ephemeral range, which the host's other UDP sockets and outgoing
    /// connections share.
    public static let defaultMaxFlows = 8_192
    /// The accepted idle timeouts: 10 ms to a day.
    public static let idleTimeoutRangeMilliseconds: ClosedRange<Int64> = 10...86_400_000
    /// The accepted flow limits.
    public static let maxFlowsRange: ClosedRange<Int> = 1...1_048_576
    /// Off by default: polling pays on a host with CPU to spare, but where
    /// CPU-bound work shares the proxy's CPU, each yield between polls can hand that
    /// work a whole time slice and stall the port for milliseconds. 100 µs (polling
    /// on ports busier than 10,000 datagrams a second) suits a dedicated host.
    public static let defaultBusyPollMicroseconds: Int64 = 0
    /// The accepted polling windows, in microseconds (0: never poll).
    public static let busyPollRangeMicroseconds: ClosedRange<Int64> = 0...10_000
    /// The environment variable the shim reads for the idle timeout.
    public static let idleTimeoutEnvironmentVariable = "EDSHIM_UDP_IDLE_TIMEOUT"
    /// The environment variable the shim reads for the flow limit.
    public static let maxFlowsEnvironmentVariable = "EDSHIM_UDP_MAX_FLOWS"
    /// The environment variable the shim reads for the polling window.
    public static let busyPollEnvironmentVariable = "EDSHIM_UDP_BUSY_POLL"

    /// A flow with no datagram either way for this long is closed.
    public var idleTimeoutMilliseconds: Int64
    /// At most this many flows (each one upstream socket) exist at once.
    public var maxFlows: Int
    /// After a datagram, keep polling for the next one this long (µs) instead of
    /// sleeping, while traffic is that dense; 0: always sleep.
    public var busyPollMicroseconds: Int64

    /// Creates options; the defaults are docker-proxy's behaviour plus a bound.
    public init(
        idleTimeoutMilliseconds: Int64 = UDPProxyOptions.defaultIdleTimeoutMilliseconds,
        maxFlows: Int = UDPProxyOptions.defaultMaxFlows,
        busyPollMicroseconds: Int64 = UDPProxyOptions.defaultBusyPollMicroseconds
    ) {
        self.idleTimeoutMilliseconds = idleTimeoutMilliseconds
        self.maxFlows = maxFlows
        self.busyPollMicroseconds = busyPollMicroseconds
    }

    /// Reads `EDSHIM_UDP_IDLE_TIMEOUT`, `EDSHIM_UDP_MAX_FLOWS` and `EDSHIM_UDP_BUSY_POLL` through `lookup`;
    /// unset or empty means the default, anything unparsable is an error naming the variable.
    public static func fromEnvironment(_ lookup: (String) -> String? = ProcessEnvironment.value) throws(ArgumentError) -> UDPProxyOptions {
        var options = UDPProxyOptions()
        if let text = lookup(idleTimeoutEnvironmentVariable), !text.isEmpty {
            options.idleTimeoutMilliseconds = try parseIdleTimeout(text, source: idleTimeoutEnvironmentVariable)
        }
        if let text = lookup(maxFlowsEnvironmentVariable), !text.isEmpty {
            options.maxFlows = try parseMaxFlows(text, source: maxFlowsEnvironmentVariable)
        }
        if let text = lookup(busyPollEnvironmentVariable), !text.isEmpty {
            options.busyPollMicroseconds = try parseBusyPoll(text, source: busyPollEnvironmentVariable)
        }
        return options
    }

    /// Parses an idle timeout: seconds (`90`, `0.5`) or a number with a unit
    /// (`500ms`, `90s`, `2m`). `source` names the flag or variable in the error.
    public static func parseIdleTimeout(_ text: String, source: String) throws(ArgumentError) -> Int64 {
        guard let milliseconds = DurationText.milliseconds(text) else {
            throw ArgumentError("invalid value \"\(text)\" for \(source): give seconds (90, 0.5) or a number with ms, s, m or h")
        }
        guard idleTimeoutRangeMilliseconds.contains(milliseconds) else {
            throw ArgumentError("invalid value \"\(text)\" for \(source): the idle timeout must be between 10ms and 24h")
        }
        return milliseconds
    }

    /// Parses a flow limit: a whole number in `maxFlowsRange`.
    public static func parseMaxFlows(_ text: String, source: String) throws(ArgumentError) -> Int {
        guard let value = Int(text), maxFlowsRange.contains(value) else {
            throw ArgumentError("invalid value \"\(text)\" for \(source): give a whole number of flows between \(maxFlowsRange.lowerBound) and \(maxFlowsRange.upperBound)")
        }
        return value
    }

    /// Parses a polling window: whole microseconds (`50`, or `50us`), 0 to turn polling off.
    public static func parseBusyPoll(_ text: String, source: String) throws(ArgumentError) -> Int64 {
        let number = text.hasSuffix("us") ? String(text.dropLast(2)) : text
        guard let value = Int64(number), busyPollRangeMicroseconds.contains(value) else {
            throw ArgumentError("invalid value \"\(text)\" for \(source): give microseconds between 0 (never poll) and \(busyPollRangeMicroseconds.upperBound)")
        }
        return value
    }
}
