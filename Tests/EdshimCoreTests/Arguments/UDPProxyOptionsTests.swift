@testable import EdshimCore
import Testing

@Suite("UDP proxy options")
struct UDPProxyOptionsTests {
    @Test("idle timeouts: seconds or a number with a unit", arguments: [
        ("90", Int64(90_000)), ("0.5", 500), ("500ms", 500), ("90s", 90_000), ("2m", 120_000), ("1h", 3_600_000), ("0.01", 10),
    ])
    func idleTimeouts(text: String, milliseconds: Int64) throws {
        #expect(try UDPProxyOptions.parseIdleTimeout(text, source: "--idle-timeout") == milliseconds)
    }

    @Test("bad idle timeouts name their source", arguments: ["", "soon", "0", "-1", "5ms", "25h", "nan", "inf", "1d", "s", "1e3", "0x10", "+90", "1.2.3", ".", " 90"])
    func badIdleTimeouts(text: String) {
        #expect(throws: ArgumentError.self) { try UDPProxyOptions.parseIdleTimeout(text, source: "EDSHIM_UDP_IDLE_TIMEOUT") }
        do {
            _ = try UDPProxyOptions.parseIdleTimeout(text, source: "EDSHIM_UDP_IDLE_TIMEOUT")
        } catch {
            #expect(error.description.contains("EDSHIM_UDP_IDLE_TIMEOUT"))
        }
    }

    @Test("flow limits", arguments: [("1", 1), ("4096", 4096), ("1048576", 1_048_576)])
    func maxFlows(text: String, value: Int) throws {
        #expect(try UDPProxyOptions.parseMaxFlows(text, source: "--max-flows") == value)
    }

    @Test("bad flow limits", arguments: ["0", "-3", "many", "1.5", "1048577", ""])
    func badMaxFlows(text: String) {
        #expect(throws: ArgumentError.self) { try UDPProxyOptions.parseMaxFlows(text, source: "--max-flows") }
    }

    @Test("the environment: unset or empty means the default")
    func environment() throws {
        #expect(try UDPProxyOptions.fromEnvironment { _ in nil } == UDPProxyOptions())
        #expect(try UDPProxyOptions.fromEnvironment { _ in "" } == UDPProxyOptions())
        let set = try UDPProxyOptions.fromEnvironment { name in
            [UDPProxyOptions.idleTimeoutEnvironmentVariable: "30s", UDPProxyOptions.maxFlowsEnvironmentVariable: "100"][name]
        }
        #expect(set == UDPProxyOptions(idleTimeoutMilliseconds: 30_000, maxFlows: 100))
        #expect(UDPProxyOptions().idleTimeoutMilliseconds == 90_000, "docker-proxy's 90 s")
        #expect(throws: ArgumentError.self) {
            try UDPProxyOptions.fromEnvironment { name in name == UDPProxyOptions.maxFlowsEnvironmentVariable ? "lots" : nil }
        }
    }
}

@Suite("UDP proxy busy polling option")
struct UDPProxyBusyPollOptionTests {
    @Test("polling windows in microseconds", arguments: [("0", Int64(0)), ("50", 50), ("50us", 50), ("10000", 10_000)])
    func windows(text: String, microseconds: Int64) throws {
        #expect(try UDPProxyOptions.parseBusyPoll(text, source: "--busy-poll") == microseconds)
    }

    @Test("bad polling windows", arguments: ["-1", "10001", "fast", "5ms", ""])
    func badWindows(text: String) {
        #expect(throws: ArgumentError.self) { try UDPProxyOptions.parseBusyPoll(text, source: "EDSHIM_UDP_BUSY_POLL") }
    }

    @Test("read from the environment, off by default")
    func environment() throws {
        #expect(UDPProxyOptions().busyPollMicroseconds == 0)
        let on = try UDPProxyOptions.fromEnvironment { $0 == UDPProxyOptions.busyPollEnvironmentVariable ? "100" : nil }
        #expect(on.busyPollMicroseconds == 100)
    }
}
