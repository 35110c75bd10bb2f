import Cluster
import PacketWire

/// Why a packet was passed on unchanged.
public enum PassReason: Int, Sendable, CaseIterable {
    /// ARP, IPv6 and other non-IPv4 frames.
    case notIPv4
    /// IPv4 that is neither TCP nor UDP (SCTP, ICMP other than errors about a tracked connection, ...).
    case otherProtocol
    /// TCP/UDP that is neither to a Service frontend nor part of a tracked connection.
    case notService
    /// Second and later IP fragments, which carry no ports (not reassembled).
    case laterFragment
    /// Frames a cooked capture recorded as sent by the capturing host: the node's own output.
    case outgoing
    /// Frames that could not be decoded; see `DataplaneStats.malformed` for the reason.
    case malformed

    public var name: String {
        switch self {
        case .notIPv4: "not_ipv4"
        case .otherProtocol: "other_protocol"
        case .notService: "not_service"
        case .laterFragment: "later_fragment"
        case .outgoing: "outgoing"
        case .malformed: "malformed"
        }
    }
}

/// Why a service packet was dropped.
public enum DropReason: Int, Sendable, CaseIterable {
    /// Conntrack found the packet invalid for its connection (kube-proxy drops ctstate INVALID).
    case conntrackInvalid
    /// The conntrack table was full and no entry could be early-dropped.
    case tableFull
    /// A new connection's reply tuple was already taken by another entry (or no masquerade port was free).
    case insertFailed
    /// A `Local` traffic policy and no endpoint on this node (kube-proxy's "has no local endpoints" DROP).
    case noLocalEndpoints
    /// A client outside `loadBalancerSourceRanges` to a load balancer IP (kube-proxy's KUBE-PROXY-FIREWALL DROP).
    case loadBalancerFirewall

    public var name: String {
        switch self {
        case .conntrackInvalid: "conntrack_invalid"
        case .tableFull: "table_full"
        case .insertFailed: "insert_failed"
        case .noLocalEndpoints: "no_local_endpoints"
        case .loadBalancerFirewall: "load_balancer_firewall"
        }
    }
}

/// Per-verdict, per-reason and per-backend counters. Sized once; counting never allocates.
public struct DataplaneStats: Sendable {
    public private(set) var packets = 0
    /// Packets per verdict, in fields rather than an array: counting one (for every packet) is a plain add, with
    /// no check that the storage is unshared.
    private var verdicts = VerdictCounts()
    public private(set) var passReasons = [Int](repeating: 0, count: PassReason.allCases.count)
    public private(set) var dropReasons = [Int](repeating: 0, count: DropReason.allCases.count)
    public private(set) var malformed = [Int](repeating: 0, count: WireError.allCases.count)
    /// Packets rewritten client to pod (DNAT).
    public internal(set) var translatedOriginal = 0
    /// Packets rewritten pod to client (reverse NAT).
    public internal(set) var translatedReply = 0
    /// ICMP errors about a tracked connection, translated (conntrack's RELATED).
    public internal(set) var translatedRelated = 0
    /// Connections created.
    public internal(set) var newConnections = 0
    /// Connections created on the backend whose reply the capture holds (when following the capture's replies).
    public internal(set) var connectionsFromCapture = 0
    /// New connections to frontends without endpoints, answered with a reject.
    public internal(set) var rejected = 0
    /// New connections masqueraded (SNAT to the node's address).
    public internal(set) var masqueraded = 0
    /// Connections per backend, indexed like `BackendIndex`.
    public private(set) var backendConnections: [Int]
    /// Packets (both directions) per backend.
    public private(set) var backendPackets: [Int]

    init(backendCount: Int) {
        backendConnections = [Int](repeating: 0, count: backendCount)
        backendPackets = [Int](repeating: 0, count: backendCount)
    }

    public func count(of action: XDPAction) -> Int { verdicts[action] }
    public func count(passed reason: PassReason) -> Int { passReasons[reason.rawValue] }
    public func count(dropped reason: DropReason) -> Int { dropReasons[reason.rawValue] }
    public func count(malformed error: WireError) -> Int { malformed[error.rawValue] }

    mutating func record(_ action: XDPAction) {
        packets += 1
        verdicts[action] += 1
    }

    mutating func recordPass(_ reason: PassReason) -> XDPAction {
        passReasons[reason.rawValue] += 1
        record(.pass)
        return .pass
    }

    mutating func recordMalformed(_ error: WireError) -> XDPAction {
        malformed[error.rawValue] += 1
        return recordPass(.malformed)
    }

    mutating func recordDrop(_ reason: DropReason) -> XDPAction {
        dropReasons[reason.rawValue] += 1
        record(.drop)
        return .drop
    }

    /// Makes room for backends numbered after a cluster change.
    mutating func growBackends(to count: Int) {
        backendConnections += [Int](repeating: 0, count: max(0, count - backendConnections.count))
        backendPackets += [Int](repeating: 0, count: max(0, count - backendPackets.count))
    }

    mutating func recordConnection(backend: Int) { backendConnections[backend] += 1 }
    mutating func recordPacket(backend: Int) { backendPackets[backend] += 1 }

    /// The counts of two programs that shared a run (workers over shards of its connections) added up.
    public static func + (left: DataplaneStats, right: DataplaneStats) -> DataplaneStats {
        func sum(_ a: [Int], _ b: [Int]) -> [Int] {
            (0..<max(a.count, b.count)).map { (a.count > $0 ? a[$0] : 0) + (b.count > $0 ? b[$0] : 0) }
        }
        var total = left
        total.packets += right.packets
        for action in XDPAction.allCases { total.verdicts[action] += right.verdicts[action] }
        total.passReasons = sum(left.passReasons, right.passReasons)
        total.dropReasons = sum(left.dropReasons, right.dropReasons)
        total.malformed = sum(left.malformed, right.malformed)
        total.translatedOriginal += right.translatedOriginal
        total.translatedReply += right.translatedReply
        total.translatedRelated += right.translatedRelated
        total.newConnections += right.newConnections
        total.connectionsFromCapture += right.connectionsFromCapture
        total.rejected += right.rejected
        total.masqueraded += right.masqueraded
        total.backendConnections = sum(left.backendConnections, right.backendConnections)
        total.backendPackets = sum(left.backendPackets, right.backendPackets)
        return total
    }
}

/// A count per XDP verdict.
private struct VerdictCounts: Sendable {
    private var aborted = 0, drop = 0, pass = 0, tx = 0, redirect = 0

    subscript(action: XDPAction) -> Int {
        get {
            switch action {
            case .aborted: aborted
            case .drop: drop
            case .pass: pass
            case .tx: tx
            case .redirect: redirect
            }
        }
        set {
            switch action {
            case .aborted: aborted = newValue
            case .drop: drop = newValue
            case .pass: pass = newValue
            case .tx: tx = newValue
            case .redirect: redirect = newValue
            }
        }
    }
}
