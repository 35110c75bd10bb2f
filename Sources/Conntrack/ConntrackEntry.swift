import PacketWire

/// One tracked connection: its two tuples, protocol state, status bits and expiry on the capture clock.
public struct ConntrackEntry: Sendable {
    /// Tuple of the first packet (client to ClusterIP).
    public var original: FlowKey
    /// Tuple replies are expected to carry (pod to client, after DNAT).
    public var reply: FlowKey
    /// TCP state; `.none` for other protocols.
    public var tcpState: TCPState = .none
    /// SCTP state; `.none` for other protocols.
    public var sctpState: SCTPState = .none
    /// A packet was seen in the reply direction (`IPS_SEEN_REPLY`).
    public var seenReply = false
    /// The connection is established enough not to be early-dropped (`IPS_ASSURED`).
    public var assured = false
    /// Creation time, nanoseconds.
    public var created: Int64
    /// Expiry time, nanoseconds.
    public var expires: Int64
    /// Monotonic creation number, for a stable listing order.
    public var serial: UInt64
    /// An opaque value the owner attaches (the dataplane stores the chosen backend).
    public var tag: UInt32
    /// TCP window and history details that the state machine needs.
    var tcp = TCPTrackingDetails()

    /// Seconds until expiry at `now`, rounded down as the kernel prints it.
    public func secondsLeft(at now: Int64) -> Int64 { max(0, (expires - now) / 1_000_000_000) }
}

/// The parts of the kernel's `struct ip_ct_tcp` svcplane keeps: last packet summary for the
/// ignore/reopen/retransmission rules, and per-direction sequence end with the unacknowledged flag.
/// Window bounds are not enforced (as with `nf_conntrack_tcp_be_liberal=1`).
struct TCPTrackingDetails: Sendable {
    var lastIndex: TCPFlagIndex = .none
    var lastDirection: ConntrackDirection = .original
    var lastSequence: UInt32 = 0
    var lastAcknowledgement: UInt32 = 0
    var lastEnd: UInt32 = 0
    var lastWindow: UInt16 = 0
    var retransmissions = 0
    var sides = (TCPSide(), TCPSide())

    subscript(direction: ConntrackDirection) -> TCPSide {
        get { direction == .original ? sides.0 : sides.1 }
        set { if direction == .original { sides.0 = newValue } else { sides.1 = newValue } }
    }
}

/// One direction's sender state.
struct TCPSide: Sendable {
    var seen = false
    var end: UInt32 = 0
    var unacknowledged = false
    var closeInitiated = false
}
