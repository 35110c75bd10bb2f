import Dataplane
import Pipeline

/// What a live node did, for people (text on stderr when it stops) and programs (JSON).
public struct NodeSummary: Encodable, Sendable {
    public struct InterfaceLine: Encodable, Sendable {
        public var name: String
        public var address: String
        public var mac: String
        public var received: Int
        public var sent: Int
    }

    public var interfaces: [InterfaceLine]
    /// Frames forwarded between TAPs (XDP_REDIRECT).
    public var forwarded: Int
    /// Frames the node built itself (ARP, ICMP), by kind.
    public var generated: [String: Int]
    public var notForwarded: [String: Int]
    /// The Service program's own summary: its verdicts, translations, connections and backends.
    public var program: RunSummary
    public var warnings: [String]

    public init(forwarder: NodeForwarder, warnings: [String] = []) {
        let stats = forwarder.stats
        interfaces = forwarder.interfaces.enumerated().map { position, interface in
            InterfaceLine(name: interface.name, address: "\(interface.address)/\(interface.prefixLength)",
                          mac: interface.mac.description, received: stats.received[position],
                          sent: stats.sent[position])
        }
        forwarded = stats.forwarded
        generated = Dictionary(uniqueKeysWithValues: GeneratedFrame.allCases.map { ($0.name, stats.count(of: $0)) })
        notForwarded = Dictionary(uniqueKeysWithValues: NotForwardedReason.allCases.map {
            ($0.name, stats.count(notForwarded: $0))
        })
        let counts = RewriteCounts(packetsRead: stats.received.reduce(0, +), packetsWritten: stats.sent.reduce(0, +),
                                   generated: GeneratedFrame.allCases.map { stats.count(of: $0) }.reduce(0, +),
                                   dropped: NotForwardedReason.allCases.map { stats.count(notForwarded: $0) }
                                       .reduce(0, +))
        program = RunSummary(counts: counts, programs: [forwarder.program])
        self.warnings = warnings
    }

    /// The human summary: the node's interfaces and routing, then the Service program's summary.
    public var text: String {
        var lines = interfaces.map { "interface \($0.name) \($0.address) \($0.mac): \($0.received) received, "
            + "\($0.sent) sent" }
        lines.append("forwarded (REDIRECT): \(forwarded)")
        lines.append("generated (TX): " + GeneratedFrame.allCases.map { "\($0.name) \(generated[$0.name] ?? 0)" }
            .joined(separator: ", "))
        lines.append("not forwarded: " + NotForwardedReason.allCases.map {
            "\($0.name) \(notForwarded[$0.name] ?? 0)"
        }.joined(separator: ", "))
        lines += warnings.map { "warning: \($0)" }
        return lines.joined(separator: "\n") + "\n" + program.text
    }
}
