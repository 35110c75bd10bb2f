/// Why the node did not forward a frame.
public enum NotForwardedReason: Int, Sendable, CaseIterable {
    /// Neither IPv4 nor ARP (IPv6, LLDP, ...), or carrying a VLAN tag.
    case notIPv4
    /// Unicast to another host's MAC address.
    case otherHost
    /// IPv4 broadcast or multicast, which a router does not forward.
    case broadcast
    /// To one of the node's addresses, and not an ICMP echo request.
    case local
    /// No network of the node holds the destination.
    case unroutable
    /// Dropped by the Service program (see its own counters).
    case program
    /// Too many frames waiting for one host's ARP answer, or for too many hosts.
    case neighborQueueFull
    /// The next hop never answered ARP (each frame answered with ICMP host unreachable).
    case neighborUnreachable
    /// The frame could not be decoded.
    case malformed
    /// The TAP refused the frame (interface down or out of buffers).
    case transmitFailed

    public var name: String {
        switch self {
        case .notIPv4: "not_ipv4"
        case .otherHost: "other_host"
        case .broadcast: "broadcast"
        case .local: "local"
        case .unroutable: "unroutable"
        case .program: "program_drop"
        case .neighborQueueFull: "neighbor_queue_full"
        case .neighborUnreachable: "neighbor_unreachable"
        case .malformed: "malformed"
        case .transmitFailed: "transmit_failed"
        }
    }
}

/// Frames the node sent on its own account, by kind.
public enum GeneratedFrame: Int, Sendable, CaseIterable {
    case arpReply
    case arpRequest
    case echoReply
    /// ICMP port unreachable for a Service without endpoints (kube-proxy's REJECT).
    case reject
    case timeExceeded
    case hostUnreachable

    public var name: String {
        switch self {
        case .arpReply: "arp_reply"
        case .arpRequest: "arp_request"
        case .echoReply: "echo_reply"
        case .reject: "reject"
        case .timeExceeded: "time_exceeded"
        case .hostUnreachable: "host_unreachable"
        }
    }
}

/// The node's counters, per interface and per reason. Sized once; counting never allocates.
public struct NodeStats: Sendable {
    /// Frames read from each TAP.
    public private(set) var received: [Int]
    /// Frames written to each TAP.
    public private(set) var sent: [Int]
    /// Frames forwarded from one TAP to another (XDP_REDIRECT).
    public private(set) var forwarded = 0
    private var generated = [Int](repeating: 0, count: GeneratedFrame.allCases.count)
    private var notForwarded = [Int](repeating: 0, count: NotForwardedReason.allCases.count)

    init(interfaces: Int) {
        received = [Int](repeating: 0, count: interfaces)
        sent = [Int](repeating: 0, count: interfaces)
    }

    public func count(of kind: GeneratedFrame) -> Int { generated[kind.rawValue] }
    public func count(notForwarded reason: NotForwardedReason) -> Int { notForwarded[reason.rawValue] }

    mutating func recordReceived(on interface: Int) { received[interface] += 1 }
    mutating func recordSent(on interface: Int) { sent[interface] += 1 }
    mutating func recordForwarded() { forwarded += 1 }
    mutating func record(_ kind: GeneratedFrame) { generated[kind.rawValue] += 1 }
    mutating func record(_ reason: NotForwardedReason) { notForwarded[reason.rawValue] += 1 }
}
