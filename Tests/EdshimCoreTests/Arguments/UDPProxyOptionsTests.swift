import EdshimCore
import Testing

@Suite("UDP proxy options")
struct UDPProxyOptionsTests {
    @Test("idle timeouts: seconds or a number with a unit", arguments: [
        ("90", Int64(90_000)), ("0.5", 500), ("500ms", 500), ("90s", 90_000), ("2m", 120_000), ("1h", 3_600_000), ("0.01", 10),
    ])
    func idleTimeouts(text: String, milliseconds: Int64) throws {
        #expect(try UDPProxyOptions.parseIdleTimeout(text, source: "--idle-timeout") == milliseconds)
    }

    @Test("bad idle timeouts name their source", arguments: ["", "soon", "0", "-1", "5ms", "25h", "nan", "inf", "1d", "s"])
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
            name == UDPProxyOptions.idleTimeoutEnvironmentVariable ? "30s" : "100"
        }
        #expect(set == UDPProxyOptions(idleTimeoutMilliseconds: 30_000, maxFlows: 100))
        #expect(UDPProxyOptions().idleTimeoutMilliseconds == 90_000, "docker-proxy's 90 s")
        #expect(throws: ArgumentError.self) {
            try UDPProxyOptions.fromEnvironment { name in name == UDPProxyOptions.maxFlowsEnvironmentVariable ? "lots" : nil }
        }
    }
}
