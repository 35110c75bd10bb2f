/// Timeouts in seconds, with the kernel's defaults (nf_conntrack_proto_tcp.c, _udp.c, _sctp.c).
/// kube-proxy's flags set some of them on a node (`--conntrack-tcp-timeout-established`, ...).
public struct ConntrackTimeouts: Sendable, Equatable {
    /// Per TCP state, indexed by `TCPState.rawValue`.
    public var tcp: [Int64] = [120, 120, 60, 432_000, 120, 60, 30, 120, 10, 120]
    /// Cap while data is unacknowledged (`nf_conntrack_tcp_timeout_unacknowledged`).
    public var tcpUnacknowledged: Int64 = 300
    /// Cap after too many retransmissions or a zero window (`nf_conntrack_tcp_timeout_max_retrans`).
    public var tcpMaxRetransmissions: Int64 = 300
    /// Retransmissions before the cap applies (`nf_conntrack_tcp_max_retrans`).
    public var maxRetransmissions = 3
    /// UDP before a reply, or for a short exchange (`nf_conntrack_udp_timeout`).
    public var udp: Int64 = 30
    /// UDP streams, replied and older than two seconds (`nf_conntrack_udp_timeout_stream`).
    public var udpStream: Int64 = 120
    /// Per SCTP state, indexed by `SCTPState.rawValue` (Linux 6.2 and later: ESTABLISHED 210 s).
    public var sctp: [Int64] = [10, 10, 3, 3, 210, 3, 3, 3, 30]

    public init() {}

    public func tcp(_ state: TCPState) -> Int64 { tcp[state.rawValue] }

    public mutating func setTCP(_ state: TCPState, seconds: Int64) { tcp[state.rawValue] = seconds }
}
