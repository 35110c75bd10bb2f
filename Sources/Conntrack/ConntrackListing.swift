import PacketWire

/// One entry as `conntrack -L` shows it; `Encodable` for the JSON dump.
public struct ConntrackRecord: Encodable, Sendable, Equatable {
    public struct Tuple: Encodable, Sendable, Equatable {
        public var src: String
        public var dst: String
        public var sport: UInt16
        public var dport: UInt16

        init(_ key: FlowKey) {
            src = key.source.description
            dst = key.destination.description
            sport = key.sourcePort
            dport = key.destinationPort
        }
    }

    public var `protocol`: String
    public var protocolNumber: UInt8
    /// Seconds until the entry expires.
    public var timeout: Int64
    /// TCP or SCTP state name; nil for UDP.
    public var state: String?
    public var original: Tuple
    public var reply: Tuple
    public var unreplied: Bool
    public var assured: Bool

    public init(_ entry: ConntrackEntry, now: Int64) {
        protocolNumber = entry.original.protocolNumber
        switch protocolNumber {
        case IPProtocol.tcp: (self.protocol, state) = ("tcp", entry.tcpState.name)
        case IPProtocol.udp: (self.protocol, state) = ("udp", nil)
        case IPProtocol.sctp: (self.protocol, state) = ("sctp", entry.sctpState.name)
        default: (self.protocol, state) = ("unknown", nil)
        }
        timeout = entry.secondsLeft(at: now)
        original = Tuple(entry.original)
        reply = Tuple(entry.reply)
        unreplied = !entry.seenReply
        assured = entry.assured
    }

    /// The line `conntrack -L` prints for this entry (conntrack-tools 1.4, default output).
    public var line: String {
        var text = self.protocol.padding(toWidth: 8) + " \(protocolNumber) \(timeout) "
        if let state { text += state + " " }
        text += Self.tupleText(original)
        if unreplied { text += "[UNREPLIED] " }
        text += Self.tupleText(reply)
        if assured { text += "[ASSURED] " }
        return text + "mark=0 use=1"
    }

    private static func tupleText(_ tuple: Tuple) -> String {
        "src=\(tuple.src) dst=\(tuple.dst) sport=\(tuple.sport) dport=\(tuple.dport) "
    }

    /// The summary conntrack-tools prints on stderr after a listing.
    public static func summaryLine(count: Int) -> String {
        "conntrack v1.4.7 (conntrack-tools): \(count) flow entries have been shown."
    }
}

extension String {
    func padding(toWidth width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}
