/// SCTP association states as netfilter conntrack tracks them (nf_conntrack_proto_sctp.c, Linux 6.6 and later),
/// with the names `conntrack -L` prints.
public enum SCTPState: Int, Sendable, CaseIterable {
    case none, closed, cookieWait, cookieEchoed, established, shutdownSent, shutdownRecd, shutdownAckSent,
         heartbeatSent

    public var name: String {
        switch self {
        case .none: "NONE"
        case .closed: "CLOSED"
        case .cookieWait: "COOKIE_WAIT"
        case .cookieEchoed: "COOKIE_ECHOED"
        case .established: "ESTABLISHED"
        case .shutdownSent: "SHUTDOWN_SENT"
        case .shutdownRecd: "SHUTDOWN_RECD"
        case .shutdownAckSent: "SHUTDOWN_ACK_SENT"
        case .heartbeatSent: "HEARTBEAT_SENT"
        }
    }
}

/// The control chunks of one SCTP packet, in order (those conntrack's table knows; DATA, SACK and the rest never
/// change the state), and whether other chunks came with them. Fixed size: building it never allocates.
public struct SCTPChunks: Sendable, Equatable {
    /// Up to eight chunk types, first in the low byte.
    private var packed: UInt64 = 0
    public private(set) var count = 0
    /// Chunks outside the table (DATA, SACK, ...).
    public var hasOtherChunks = false
    /// A chunk of length zero, or INIT, INIT_ACK or SHUTDOWN_COMPLETE bundled with others: the kernel's
    /// `do_basic_checks` refuses the packet.
    public var malformed = false

    public init() {}

    /// Reads the chunks of the SCTP packet at `offset` (its common header first), as far as they were captured.
    public init(frame: UnsafeMutableRawBufferPointer, offset: Int, length: Int) {
        var position = offset + 12
        let end = min(offset + length, frame.count)
        var chunks = 0
        var bundlesExclusive = false
        while position + 4 <= end {
            let type = frame.u8(position)
            let chunkLength = Int(frame.u16(position + 2))
            guard chunkLength >= 4 else {
                malformed = true
                return
            }
            chunks += 1
            bundlesExclusive = bundlesExclusive || type == 1 || type == 2 || type == 14
            if SCTPStateMachine.row(type) != nil { append(type) } else { hasOtherChunks = true }
            position += (chunkLength + 3) & ~3
        }
        malformed = chunks == 0 || (bundlesExclusive && chunks > 1)
    }

    mutating func append(_ type: UInt8) {
        guard count < 8 else { return }
        packed |= UInt64(type) << (8 * count)
        count += 1
    }

    public subscript(index: Int) -> UInt8 { UInt8(truncatingIfNeeded: packed >> (8 * index)) }

    public func contains(_ type: UInt8) -> Bool { (0..<count).contains { self[$0] == type } }
}

/// Netfilter's SCTP transition table `sctp_conntracks[direction][chunk][state]`.
enum SCTPStateMachine {
    /// nil: the chunk is invalid in that state and direction.
    private static let original: [[SCTPState?]] = [
        /* init          */ [.closed, .closed, .cookieWait, .cookieEchoed, .established, .closed, .closed, .shutdownAckSent, .cookieWait],
        /* init_ack      */ [.closed, .closed, .cookieWait, .cookieEchoed, .established, .shutdownSent, .shutdownRecd, .shutdownAckSent, .closed],
        /* abort         */ [.closed, .closed, .closed, .closed, .closed, .closed, .closed, .closed, .closed],
        /* shutdown      */ [.closed, .closed, .cookieWait, .cookieEchoed, .shutdownSent, .shutdownSent, .shutdownRecd, .shutdownAckSent, .closed],
        /* shutdown_ack  */ [.shutdownAckSent, .closed, .cookieWait, .cookieEchoed, .established, .shutdownAckSent, .shutdownAckSent, .shutdownAckSent, .shutdownAckSent],
        /* error         */ [.closed, .closed, .cookieWait, .cookieEchoed, .established, .shutdownSent, .shutdownRecd, .shutdownAckSent, .closed],
        /* cookie_echo   */ [.closed, .closed, .cookieEchoed, .cookieEchoed, .established, .shutdownSent, .shutdownRecd, .shutdownAckSent, .closed],
        /* cookie_ack    */ [.closed, .closed, .cookieWait, .established, .established, .shutdownSent, .shutdownRecd, .shutdownAckSent, .closed],
        /* shutdown_comp */ [.closed, .closed, .cookieWait, .cookieEchoed, .established, .shutdownSent, .shutdownRecd, .closed, .closed],
        /* heartbeat     */ [.heartbeatSent, .closed, .cookieWait, .cookieEchoed, .established, .shutdownSent, .shutdownRecd, .shutdownAckSent, .heartbeatSent],
        /* heartbeat_ack */ [.closed, .closed, .cookieWait, .cookieEchoed, .established, .shutdownSent, .shutdownRecd, .shutdownAckSent, .heartbeatSent],
    ]
    private static let reply: [[SCTPState?]] = [
        /* init          */ [nil, .closed, .cookieWait, .cookieEchoed, .established, .shutdownSent, .shutdownRecd, .shutdownAckSent, nil],
        /* init_ack      */ [nil, .cookieWait, .cookieWait, .cookieEchoed, .established, .shutdownSent, .shutdownRecd, .shutdownAckSent, nil],
        /* abort         */ [nil, .closed, .closed, .closed, .closed, .closed, .closed, .closed, nil],
        /* shutdown      */ [nil, .closed, .cookieWait, .cookieEchoed, .shutdownRecd, .shutdownSent, .shutdownRecd, .shutdownAckSent, nil],
        /* shutdown_ack  */ [nil, .closed, .cookieWait, .cookieEchoed, .established, .shutdownAckSent, .shutdownAckSent, .shutdownAckSent, nil],
        /* error         */ [nil, .closed, .cookieWait, .closed, .established, .shutdownSent, .shutdownRecd, .shutdownAckSent, nil],
        /* cookie_echo   */ [nil, .closed, .cookieEchoed, .cookieEchoed, .established, .shutdownSent, .shutdownRecd, .shutdownAckSent, nil],
        /* cookie_ack    */ [nil, .closed, .cookieWait, .established, .established, .shutdownSent, .shutdownRecd, .shutdownAckSent, nil],
        /* shutdown_comp */ [nil, .closed, .cookieWait, .cookieEchoed, .established, .shutdownSent, .shutdownRecd, .closed, nil],
        /* heartbeat     */ [nil, .closed, .cookieWait, .cookieEchoed, .established, .shutdownSent, .shutdownRecd, .shutdownAckSent, .heartbeatSent],
        /* heartbeat_ack */ [nil, .closed, .cookieWait, .cookieEchoed, .established, .shutdownSent, .shutdownRecd, .shutdownAckSent, .established],
    ]

    /// The table row of a chunk type, nil for chunks that never change the state.
    static func row(_ type: UInt8) -> Int? {
        switch type {
        case 1: 0  // INIT
        case 2: 1  // INIT_ACK
        case 6: 2  // ABORT
        case 7: 3  // SHUTDOWN
        case 8: 4  // SHUTDOWN_ACK
        case 9: 5  // ERROR
        case 10: 6  // COOKIE_ECHO
        case 11: 7  // COOKIE_ACK
        case 14: 8  // SHUTDOWN_COMPLETE
        case 4: 9  // HEARTBEAT
        case 5: 10  // HEARTBEAT_ACK
        default: nil
        }
    }

    /// The state after `chunk` in `direction`; nil when the packet is invalid.
    static func next(_ state: SCTPState, chunk: UInt8, direction: ConntrackDirection) -> SCTPState? {
        guard let row = row(chunk) else { return state }
        return (direction == .original ? original : reply)[row][state.rawValue]
    }
}
