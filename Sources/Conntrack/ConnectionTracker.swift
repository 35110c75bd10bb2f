import PacketWire

/// What a TCP segment carries that connection tracking reads.
public struct TCPSegmentSummary: Sendable {
    public var flags: TCPFlags
    public var sequence: UInt32
    public var acknowledgement: UInt32
    public var payloadLength: Int
    public var window: UInt16

    @inlinable
    public init(flags: TCPFlags, sequence: UInt32, acknowledgement: UInt32, payloadLength: Int, window: UInt16) {
        self.flags = flags
        self.sequence = sequence
        self.acknowledgement = acknowledgement
        self.payloadLength = payloadLength
        self.window = window
    }

    /// (Inlined: the program reads these fields of every TCP segment.)
    @inlinable @inline(__always)
    public init(_ segment: TCPSegment) {
        self.init(flags: segment.flags, sequence: segment.sequenceNumber,
                  acknowledgement: segment.acknowledgementNumber, payloadLength: segment.payloadLength,
                  window: segment.window)
    }

    /// Sequence number after this segment (`segment_seq_plus_len`): data plus one for SYN and FIN.
    var end: UInt32 {
        sequence &+ UInt32(truncatingIfNeeded: payloadLength) &+ (flags.contains(.syn) ? 1 : 0)
            &+ (flags.contains(.fin) ? 1 : 0)
    }
}

/// What tracking decided for one packet.
public enum TrackingOutcome: Equatable, Sendable {
    /// Accepted: state advanced (or kept) and the timeout refreshed as the kernel does.
    case accepted
    /// Accepted without a state change or refresh (the kernel's "ignore" cells).
    case ignored
    /// Not valid for this connection: no state change; the kernel would leave it untracked.
    case invalid
    /// Accepted, and the entry is gone (a RST before any reply was seen).
    case deleted
    /// A SYN that reopens a closed connection: delete the entry and start a new one.
    case reopen
}

/// Netfilter's per-packet protocol tracking (`nf_conntrack_tcp_packet`, `nf_conntrack_udp_packet`,
/// `nf_conntrack_sctp_packet`),
/// applied to one entry.
public enum ConnectionTracker {
    static let nanosecondsPerSecond: Int64 = 1_000_000_000

    /// The state a first TCP segment opens (SYN to SYN_SENT, or a bare ACK picked up mid-connection as
    /// ESTABLISHED); nil when the segment cannot start tracking.
    public static func openingState(for flags: TCPFlags) -> TCPState? {
        guard TCPTransitionTable.isValid(flags),
              case .to(let state) = TCPTransitionTable.transition(.original, TCPFlagIndex(flags), from: .none)
        else { return nil }
        return state
    }

    /// Tracks a TCP segment on `entry`. (Inlined, with its sequence bookkeeping, into the table's `track`, its
    /// caller for every packet: the calls and their arguments cost a sixth of the tracking.)
    @inline(__always)
    public static func trackTCP(_ entry: inout ConntrackEntry, direction: ConntrackDirection,
                                segment: TCPSegmentSummary, now: Int64, timeouts: ConntrackTimeouts)
        -> TrackingOutcome
    {
        guard TCPTransitionTable.isValid(segment.flags) else { return .invalid }
        let index = TCPFlagIndex(segment.flags)
        var oldState = entry.tcpState
        var transition = TCPTransitionTable.transition(direction, index, from: oldState)
        if transition == .to(.synSent), oldState.rawValue >= TCPState.timeWait.rawValue {
            let closing = entry.tcp.sides.0.closeInitiated || entry.tcp.sides.1.closeInitiated
            if closing || (entry.tcp.lastDirection == direction && entry.tcp.lastIndex == .rst) { return .reopen }
            transition = .ignore
        }
        let newState: TCPState
        switch transition {
        case .invalid:
            return .invalid
        case .ignore:
            let other: ConntrackDirection = direction == .original ? .reply : .original
            guard index == .synAck, entry.tcp.lastIndex == .syn, entry.tcp.lastDirection == other,
                  segment.acknowledgement == entry.tcp.lastEnd
            else {
                entry.tcp.lastIndex = index
                entry.tcp.lastDirection = direction
                entry.tcp.lastSequence = segment.sequence
                entry.tcp.lastEnd = segment.end
                entry.tcp.lastWindow = segment.window
                return .ignored
            }
            // A SYN/ACK answering a SYN we ignored: both ends are in sync, so follow them.
            entry.tcp[other] = TCPSide(end: entry.tcp.lastEnd, seen: true)
            entry.tcp[direction] = TCPSide()
            oldState = .synSent
            newState = .synRecv
        case .to(let state):
            newState = state
        }
        updateSequenceTracking(&entry.tcp, direction: direction, index: index, segment: segment)
        entry.tcp.lastIndex = index
        entry.tcp.lastDirection = direction
        entry.tcpState = newState
        if oldState != newState && newState == .finWait { entry.tcp[direction].closeInitiated = true }

        var timeout = timeoutFor(newState, index: index, tracking: entry.tcp, timeouts: timeouts)
        if !entry.seenReply {
            if segment.flags.contains(.rst) { return .deleted }
            if index == .syn && oldState == .synSent { return .accepted }  // a SYN retransmit does not refresh
            if newState == .established { timeout = min(timeout, timeouts.tcpUnacknowledged) }
        } else if !entry.assured, oldState == .synRecv || oldState == .established, newState == .established {
            entry.assured = true
        }
        entry.expires = now + timeout * nanosecondsPerSecond
        return .accepted
    }

    /// Tracks a UDP datagram on `entry`: 30 s until a reply; once replied, 120 s and ASSURED for a flow
    /// older than two seconds, else 30 s.
    public static func trackUDP(_ entry: inout ConntrackEntry, now: Int64, timeouts: ConntrackTimeouts) {
        guard entry.seenReply else {
            entry.expires = now + timeouts.udp * nanosecondsPerSecond
            return
        }
        if now > entry.created + 2 * nanosecondsPerSecond {
            entry.expires = now + timeouts.udpStream * nanosecondsPerSecond
            entry.assured = true
        } else {
            entry.expires = now + timeouts.udp * nanosecondsPerSecond
        }
    }

    /// Whether an SCTP packet may create an entry (`sctp_new` and the out-of-the-blue rules): every chunk must
    /// lead somewhere from no state, and ABORT, SHUTDOWN_COMPLETE and COOKIE_ACK never start an association.
    public static func sctpCanOpen(_ chunks: SCTPChunks) -> Bool {
        !chunks.malformed && !chunks.hasOtherChunks && chunks.count > 0
            && !chunks.contains(6) && !chunks.contains(14) && !chunks.contains(11)
    }

    /// Tracks an SCTP packet on `entry` (`nf_conntrack_sctp_packet`): each control chunk in turn through the
    /// transition table, ASSURED on reaching ESTABLISHED, then the timeout of the state reached. Verification
    /// tags are not checked.
    public static func trackSCTP(_ entry: inout ConntrackEntry, direction: ConntrackDirection, chunks: SCTPChunks,
                                 now: Int64, timeouts: ConntrackTimeouts) -> TrackingOutcome
    {
        guard !chunks.malformed else { return .invalid }
        for index in 0..<chunks.count {
            guard let next = SCTPStateMachine.next(entry.sctpState, chunk: chunks[index], direction: direction) else {
                return .invalid
            }
            entry.sctpState = next
            if next == .established { entry.assured = true }
        }
        entry.expires = now + timeouts.sctp[entry.sctpState.rawValue] * nanosecondsPerSecond
        return .accepted
    }

    private static func timeoutFor(_ state: TCPState, index: TCPFlagIndex, tracking: TCPTrackingDetails,
                                   timeouts: ConntrackTimeouts) -> Int64
    {
        let base = timeouts.tcp(state)
        if Int(tracking.retransmissions) >= timeouts.maxRetransmissions {
            return min(base, timeouts.tcpMaxRetransmissions)
        }
        if index == .rst { return timeouts.tcp(.close) }
        if tracking.sides.0.unacknowledged || tracking.sides.1.unacknowledged {
            return min(base, timeouts.tcpUnacknowledged)
        }
        if tracking.lastWindow == 0 { return min(base, timeouts.tcpMaxRetransmissions) }
        return base
    }

    /// The sequence bookkeeping of `tcp_in_window` without its window checks: each side's highest
    /// sequence end, whether it is still unacknowledged, and retransmission counting.
    @inline(__always)
    private static func updateSequenceTracking(_ tracking: inout TCPTrackingDetails, direction: ConntrackDirection,
                                               index: TCPFlagIndex, segment: TCPSegmentSummary)
    {
        let other: ConntrackDirection = direction == .original ? .reply : .original
        let end = segment.end
        var sender = tracking[direction]
        if !sender.seen {
            sender.seen = true
            sender.end = end
        } else if Int32(bitPattern: end &- sender.end) > 0 {
            sender.end = end
            sender.unacknowledged = true
        }
        tracking[direction] = sender
        var receiver = tracking[other]
        let acknowledged = segment.flags.contains(.ack) ? segment.acknowledgement : receiver.end
        if acknowledged == receiver.end { receiver.unacknowledged = false }
        tracking[other] = receiver
        guard index == .ack else { return }
        if tracking.lastDirection == direction, tracking.lastSequence == segment.sequence,
           tracking.lastAcknowledgement == segment.acknowledgement, tracking.lastEnd == end,
           tracking.lastWindow == segment.window
        {
            tracking.retransmissions &+= 1
        } else {
            tracking.lastDirection = direction
            tracking.lastSequence = segment.sequence
            tracking.lastAcknowledgement = segment.acknowledgement
            tracking.lastEnd = end
            tracking.lastWindow = segment.window
            tracking.retransmissions = 0
        }
    }
}
