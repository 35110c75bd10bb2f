import PacketWire

/// The transport protocols a Service port can name.
public enum ServiceProtocol: String, Sendable, Hashable, CaseIterable {
    case tcp = "TCP"
    case udp = "UDP"
    case sctp = "SCTP"

    /// IP protocol number.
    public var number: UInt8 {
        switch self {
        case .tcp: IPProtocol.tcp
        case .udp: IPProtocol.udp
        case .sctp: 132
        }
    }

    /// Lower-case name as conntrack and kube-proxy print it.
    public var lowercaseName: String { rawValue.lowercased() }
}

/// `namespace/name` plus `:port` when the Service port is named, as kube-proxy names a service port.
public struct ServicePortName: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var namespace: String
    public var name: String
    public var port: String

    public var description: String { port.isEmpty ? "\(namespace)/\(name)" : "\(namespace)/\(name):\(port)" }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.description < rhs.description }
}

/// Where a new connection arrives: a virtual IP, port and protocol.
public struct Frontend: Hashable, Sendable, CustomStringConvertible {
    public var address: IPv4Address
    public var port: UInt16
    public var serviceProtocol: ServiceProtocol

    public init(address: IPv4Address, port: UInt16, serviceProtocol: ServiceProtocol) {
        self.address = address
        self.port = port
        self.serviceProtocol = serviceProtocol
    }

    public var description: String { "\(address):\(port)/\(serviceProtocol.lowercaseName)" }

    /// One word per lookup (the default would hash the protocol's raw String).
    public func hash(into hasher: inout Hasher) {
        hasher.combine(UInt64(address.value) << 24 | UInt64(port) << 8 | UInt64(serviceProtocol.number))
    }
}

/// One endpoint of a service port: a pod address and target port with its conditions.
public struct Backend: Hashable, Sendable, CustomStringConvertible {
    public var address: IPv4Address
    public var port: UInt16
    public var ready: Bool
    public var serving: Bool
    public var terminating: Bool
    /// The Pod's name when the endpoint names it.
    public var podName: String?
    public var nodeName: String?

    public var description: String { "\(address):\(port)" }
}

/// ClientIP session affinity of a Service.
public struct SessionAffinity: Hashable, Sendable {
    /// How long a client stays pinned without traffic (default 10800, at most 86400).
    public var timeoutSeconds: Int
}

/// One Service port, load balanced: its frontend, all its endpoints and those that take new connections.
public struct ServicePortEntry: Sendable {
    public var name: ServicePortName
    public var frontend: Frontend
    /// Every endpoint, in kube-proxy's order: by the text "ip:port" (so 10.0.1.10 comes before 10.0.1.2).
    public var backends: [Backend]
    /// Indices into `backends` that take new connections: the ready ones, or when none is ready the
    /// serving-and-terminating ones (kube-proxy's terminating fallback).
    public var usableBackends: [Int]
    public var affinity: SessionAffinity?
}

/// The compiled, immutable view of the cluster that the dataplane serves.
public struct ServiceTable: Sendable {
    /// Service ports in a stable order (by service port name, then frontend).
    public let entries: [ServicePortEntry]
    /// Frontend to index in `entries`.
    public let entryIndex: [Frontend: Int]
    /// Service ports that exist but are not load balanced (headless, ExternalName, IPv6-only, SCTP).
    public let unservedPorts: [String]

    public init(entries: [ServicePortEntry], unservedPorts: [String] = []) {
        self.entries = entries
        var index: [Frontend: Int] = [:]
        for (position, entry) in entries.enumerated() { index[entry.frontend] = position }
        entryIndex = index
        self.unservedPorts = unservedPorts
    }

    public func entry(for frontend: Frontend) -> ServicePortEntry? {
        entryIndex[frontend].map { entries[$0] }
    }
}
