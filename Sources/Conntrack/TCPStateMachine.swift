import PacketWire

/// Direction of a packet relative to its connection's first packet.
public enum ConntrackDirection: Int, Sendable {
    case original = 0
    case reply = 1
}

/// Netfilter's TCP connection tracking states (`enum tcp_conntrack`), in kernel order.
public enum TCPState: Int, Sendable, CaseIterable, Codable {
    case none = 0, synSent, synRecv, established, finWait, closeWait, lastAck, timeWait, close, synSent2

    /// The name `conntrack -L` prints.
    public var name: String {
        switch self {
        case .none: "NONE"
        case .synSent: "SYN_SENT"
        case .synRecv: "SYN_RECV"
        case .established: "ESTABLISHED"
        case .finWait: "FIN_WAIT"
        case .closeWait: "CLOSE_WAIT"
        case .lastAck: "LAST_ACK"
        case .timeWait: "TIME_WAIT"
        case .close: "CLOSE"
        case .synSent2: "SYN_SENT2"
        }
    }
}

/// The flag class a segment falls in (`get_conntrack_index`): first match of RST, SYN (+ACK), FIN, ACK.
enum TCPFlagIndex: Int {
    case syn = 0, synAck, fin, ack, rst, none

    init(_ flags: TCPFlags) {
        if flags.contains(.rst) {
            self = .rst
        } else if flags.contains(.syn) {
            self = flags.contains(.ack) ? .synAck : .syn
        } else if flags.contains(.fin) {
            self = .fin
        } else if flags.contains(.ack) {
            self = .ack
        } else {
            self = .none
        }
    }
}

/// One cell of the transition table: a next state, "ignore" or "invalid".
enum TCPTransition: Equatable {
    case to(TCPState)
    case ignore
    case invalid
}

/// The kernel's `tcp_conntracks[direction][flag index][state]` table and its valid-flags check.
enum TCPTransitionTable {
    private static let sNO = TCPTransition.to(.none), sSS = TCPTransition.to(.synSent)
    private static let sSR = TCPTransition.to(.synRecv), sES = TCPTransition.to(.established)
    private static let sFW = TCPTransition.to(.finWait), sCW = TCPTransition.to(.closeWait)
    private static let sLA = TCPTransition.to(.lastAck), sTW = TCPTransition.to(.timeWait)
    private static let sCL = TCPTransition.to(.close), sS2 = TCPTransition.to(.synSent2)
    private static let sIV = TCPTransition.invalid, sIG = TCPTransition.ignore

    //                          sNO  sSS  sSR  sES  sFW  sCW  sLA  sTW  sCL  sS2
    private static let original: [[TCPTransition]] = [
        /* syn    */ [sSS, sSS, sIG, sIG, sIG, sIG, sIG, sSS, sSS, sS2],
        /* synack */ [sIV, sIV, sSR, sIV, sIV, sIV, sIV, sIV, sIV, sSR],
        /* fin    */ [sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV],
        /* ack    */ [sES, sIV, sES, sES, sCW, sCW, sTW, sTW, sCL, sIV],
        /* rst    */ [sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL],
        /* none   */ [sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV],
    ]
    private static let reply: [[TCPTransition]] = [
        /* syn    */ [sIV, sS2, sIV, sIV, sIV, sIV, sIV, sSS, sIV, sS2],
        /* synack */ [sIV, sSR, sIG, sIG, sIG, sIG, sIG, sIG, sIG, sSR],
        /* fin    */ [sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV],
        /* ack    */ [sIV, sIG, sSR, sES, sCW, sCW, sTW, sTW, sCL, sIG],
        /* rst    */ [sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL],
        /* none   */ [sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV],
    ]

    /// Both directions in one flat table, indexed [direction][flag index][state].
    private static let table: [TCPTransition] = (original + reply).flatMap { $0 }

    static func transition(_ direction: ConntrackDirection, _ index: TCPFlagIndex, from state: TCPState)
        -> TCPTransition
    {
        table[(direction.rawValue * 6 + index.rawValue) * 10 + state.rawValue]
    }

    /// `tcp_valid_flags`: the flag combinations conntrack accepts (PSH, ECE and CWR masked off), as a bit set
    /// over the remaining FIN, SYN, RST, ACK and URG bits.
    private static let validCombinations: UInt64 = [
        TCPFlags.syn, [.syn, .urg], [.syn, .ack], [.rst], [.rst, .ack], [.fin, .ack], [.fin, .ack, .urg], [.ack],
        [.ack, .urg],
    ].reduce(0) { $0 | 1 << UInt64($1.rawValue) }

    static func isValid(_ flags: TCPFlags) -> Bool {
        let significant = flags.rawValue & ~(TCPFlags.psh.rawValue | TCPFlags.ece.rawValue | TCPFlags.cwr.rawValue)
        return validCombinations & (1 << UInt64(significant)) != 0
    }
}
