import PacketWire

/// One tracked connection: its two tuples, protocol state, status bits and expiry on the capture clock.
public struct ConntrackEntry: Sendable {
    // Fields ordered so that the small ones fill the gaps: an entry takes 92 bytes (96 in the table's array).
    /// Creation time, nanoseconds.
    public var created: Int64
    /// Expiry time, nanoseconds.
    public var expires: Int64
    /// Creation number, for a stable listing order (wraps after 2^32 connections in one run).
    public var serial: UInt32
    /// Tuple of the first packet (client to ClusterIP).
    public var original: FlowKey
    /// TCP state; `.none` for other protocols.
    public var tcpState: TCPState = .none
    /// SCTP state; `.none` for other protocols.
    public var sctpState: SCTPState = .none
    /// A packet was seen in the reply direction (`IPS_SEEN_REPLY`).
    public var seenReply = false
    /// Tuple replies are expected to carry (pod to client, after DNAT).
    public var reply: FlowKey
    /// The connection is established enough not to be early-dropped (`IPS_ASSURED`).
    public var assured = false
    /// TCP window and history details that the state machine needs.
    var tcp = TCPTrackingDetails()
    /// An opaque value the owner attaches (the dataplane stores the chosen backend).
    public var tag: UInt32

    /// Seconds until expiry at `now`, rounded down as the kernel prints it.
    public func secondsLeft(at now: Int64) -> Int64 { max(0, (expires - now) / 1_000_000_000) }
}

/// The parts of the kernel's `struct ip_ct_tcp` svcplane keeps: last packet summary for the
/// ignore/reopen/retransmission rules, and per-direction sequence end with the unacknowledged flag.
/// Window bounds are not enforced (as with `nf_conntrack_tcp_be_liberal=1`).
struct TCPTrackingDetails: Sendable {
    var lastSequence: UInt32 = 0
    var lastAcknowledgement: UInt32 = 0
    var lastEnd: UInt32 = 0
    var sides = (TCPSide(), TCPSide())
    var lastWindow: UInt16 = 0
    var lastIndex: TCPFlagIndex = .none
    var lastDirection: ConntrackDirection = .original
    /// Retransmissions of the last segment in a row: a byte that wraps, as the kernel's `retrans`.
    var retransmissions: UInt8 = 0

    subscript(direction: ConntrackDirection) -> TCPSide {
        get { direction == .original ? sides.0 : sides.1 }
        set { if direction == .original { sides.0 = newValue } else { sides.1 = newValue } }
    }
}

/// One direction's sender state.
struct TCPSide: Sendable {
    var end: UInt32 = 0
    var seen = false
    var unacknowledged = false
    var closeInitiated = false
}
