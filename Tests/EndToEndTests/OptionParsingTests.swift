import Testing
@testable import svcplane

@Suite("Option parsing")
struct OptionParsingTests {
    @Test("kube-proxy style durations", arguments: [
        ("24h", 86400), ("1h30m", 5400), ("90s", 90), ("120", 120), ("1.5h", 5400), ("500ms", 0),
    ] as [(String, Int64)])
    func durations(text: String, seconds: Int64) {
        #expect(GoDuration(argument: text)?.seconds == seconds)
    }

    @Test("malformed durations are refused", arguments: ["", "h", "10x", "5m3", "-1"])
    func badDurations(text: String) {
        #expect(GoDuration(argument: text) == nil)
    }

    @Test("timeout flags reach the conntrack configuration")
    func timeoutFlags() throws {
        let options = try ProgramOptions.parse(["--conntrack-tcp-timeout-established", "24h",
                                                "--conntrack-udp-timeout", "10s", "--conntrack-max", "1000"])
        let configuration = options.configuration
        #expect(configuration.timeouts.tcp(.established) == 86400)
        #expect(configuration.timeouts.udp == 10)
        #expect(configuration.conntrackMax == 1000)
    }

    @Test("rules formats belong to their modes: list is IPVS's, iptables-save is iptables'", arguments: [
        (["--mode", "iptables", "--format", "list"], false), (["--mode", "nftables", "--format", "iptables-save"], false),
        (["--mode", "ipvs", "--format", "iptables-save"], false), (["--mode", "ipvs", "--format", "restore"], true),
        (["--mode", "nftables"], true), (["--format", "iptables-save"], true), (["--mode", "ipvs"], true),
    ] as [([String], Bool)])
    func rulesFormats(arguments: [String], valid: Bool) {
        let parsed = (try? RulesCommand.parse(["-f", "cluster.yaml"] + arguments)) != nil
        #expect(parsed == valid)
    }
}
