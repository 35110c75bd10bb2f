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

    @inline(__always)
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

/// The kernel's `tcp_conntracks[direction][flag index][state]` table and its valid-flags check. Both are made of
/// integer constants, which the compiler lays out as static data: the per-packet lookups reach them without the
/// lazy initialization (a `swift_once` call on every access) that a computed value needs.
enum TCPTransitionTable {
    // The kernel's names for the cells: a state's `TCPState` raw value (no cell leads to sNO, 0), "ignore" or
    // "invalid".
    private static let sSS: UInt8 = 1, sSR: UInt8 = 2, sES: UInt8 = 3, sFW: UInt8 = 4, sCW: UInt8 = 5
    private static let sLA: UInt8 = 6, sTW: UInt8 = 7, sCL: UInt8 = 8, sS2: UInt8 = 9
    private static let sIG: UInt8 = 0xFE, sIV: UInt8 = 0xFF

    /// Both directions, indexed [direction][flag index][state].
    private static let cells: [UInt8] = [
        // original  sNO  sSS  sSR  sES  sFW  sCW  sLA  sTW  sCL  sS2
        /* syn    */ sSS, sSS, sIG, sIG, sIG, sIG, sIG, sSS, sSS, sS2,
        /* synack */ sIV, sIV, sSR, sIV, sIV, sIV, sIV, sIV, sIV, sSR,
        /* fin    */ sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV,
        /* ack    */ sES, sIV, sES, sES, sCW, sCW, sTW, sTW, sCL, sIV,
        /* rst    */ sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL,
        /* none   */ sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV,
        // reply     sNO  sSS  sSR  sES  sFW  sCW  sLA  sTW  sCL  sS2
        /* syn    */ sIV, sS2, sIV, sIV, sIV, sIV, sIV, sSS, sIV, sS2,
        /* synack */ sIV, sSR, sIG, sIG, sIG, sIG, sIG, sIG, sIG, sSR,
        /* fin    */ sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV,
        /* ack    */ sIV, sIG, sSR, sES, sCW, sCW, sTW, sTW, sCL, sIG,
        /* rst    */ sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL,
        /* none   */ sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV,
    ]

    @inline(__always)
    static func transition(_ direction: ConntrackDirection, _ index: TCPFlagIndex, from state: TCPState)
        -> TCPTransition
    {
        let cell = cells[(direction.rawValue * 6 + index.rawValue) * 10 + state.rawValue]
        switch cell {
        case sIG: return .ignore
        case sIV: return .invalid
        default: return .to(TCPState(rawValue: Int(cell))!)
        }
    }

    /// `tcp_valid_flags`: the flag combinations conntrack accepts (PSH, ECE and CWR masked off), as a bit set
    /// over the remaining FIN (0x01), SYN (0x02), RST (0x04), ACK (0x10) and URG (0x20) bits: SYN, SYN|URG,
    /// SYN|ACK, RST, RST|ACK, FIN|ACK, FIN|ACK|URG, ACK and ACK|URG.
    private static let validCombinations: UInt64 =
        1 << 0x02 | 1 << 0x22 | 1 << 0x12 | 1 << 0x04 | 1 << 0x14 | 1 << 0x11 | 1 << 0x31 | 1 << 0x10 | 1 << 0x30

    static func isValid(_ flags: TCPFlags) -> Bool {
        let significant = flags.rawValue & ~(TCPFlags.psh.rawValue | TCPFlags.ece.rawValue | TCPFlags.cwr.rawValue)
        return validCombinations & (1 << UInt64(significant)) != 0
    }
}
