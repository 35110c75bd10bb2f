import Cluster
import PacketWire

/// Splits a capture's packets into N shards by connection, so that N independent runs (one per shard) give,
/// merged by time, what one run gives: like RSS with a symmetric key, both directions of a connection, before
/// and after NAT, land in the same shard.
///
/// A packet's key is its client's: the side that is not an endpoint, else the side that is not a Service
/// frontend (the sets of every cluster state of the run, so a removed endpoint's late replies still count). When
/// only one side's port is that of a frontend or endpoint, and of none with ClientIP affinity, the other side is
/// the client without a lookup (a flow on such a port that is no Service's is never translated: any choice that
/// is the same for both its directions serves it). A
/// client's key is a hash of its address and port, or of its address alone for a Service port with ClientIP
/// affinity or sharing an endpoint with one (so that one shard sees all of a client's connections to it); on a
/// node address it is the port, since masqueraded replies come back to the node: the masquerade port is chosen
/// in the residue of the client's key (`residue(ofClient:port:toward:)`).
/// ICMP errors take the key of the datagram they quote; packets without a client side (pod to pod, or neither
/// side known) take a symmetric hash of both ends; frames that are not IPv4 all go to shard 0.
public struct FlowSharding: Sendable {
    /// Shards are chosen from the key's low byte: at most 256 of them.
    public static let maximumShards = 256


    /// What an address, port and protocol is to the run's Service ports: a frontend, an endpoint (either with
    /// whether a Service port it belongs to has ClientIP affinity).
    private struct Role: OptionSet {
        let rawValue: UInt8
        static let frontend = Role(rawValue: 1)
        static let stickyFrontend = Role(rawValue: 2)
        static let backend = Role(rawValue: 4)
        static let stickyBackend = Role(rawValue: 8)
    }

    /// The roles of every frontend and endpoint: one lookup per side of a packet whose port is in `rolePorts`,
    /// when both sides' ports are, or one side's is in `stickyPorts` (those of sticky roles).
    private let roles: [TransportEndpoint: Role]
    private let rolePorts: PortSet
    private let stickyPorts: PortSet
    private let frontendAddresses: Set<IPv4Address>
    private let backendAddresses: Set<IPv4Address>
    private let nodeAddresses: [IPv4Address]

    /// The sharding of a run through `tables` (the initial cluster state and every `--apply` change) on a node
    /// with `nodeAddresses`. Service ports that share an endpoint, in any of the states, share their stickiness:
    /// when one has ClientIP affinity, clients of all of them are keyed by address alone, so that the reply of
    /// any of their endpoints finds the shard the request went to.
    public init(tables: [ServiceTable], nodeAddresses: [IPv4Address]) {
        var ids: [TransportEndpoint: Int] = [:]
        var parent: [Int] = []
        var sticky: [Bool] = []
        func id(_ endpoint: TransportEndpoint) -> Int {
            if let known = ids[endpoint] { return known }
            ids[endpoint] = parent.count
            parent.append(parent.count)
            sticky.append(false)
            return parent.count - 1
        }
        func root(_ node: Int) -> Int {
            var node = node
            while parent[node] != node {
                parent[node] = parent[parent[node]]
                node = parent[node]
            }
            return node
        }
        var frontendIDs: [TransportEndpoint: Int] = [:]
        var backendIDs: [TransportEndpoint: Int] = [:]
        for entry in tables.flatMap(\.entries) {
            let protocolNumber = entry.frontend.serviceProtocol.number
            var addresses = ([entry.frontend] + entry.externalFrontends).map { ($0.address, $0.port) }
            if let nodePort = entry.nodePort { addresses += nodeAddresses.map { ($0, nodePort) } }
            let frontends = addresses.map {
                TransportEndpoint(address: $0.0, port: $0.1, protocolNumber: protocolNumber)
            }
            let backends = entry.backends.map {
                TransportEndpoint(address: $0.address, port: $0.port, protocolNumber: protocolNumber)
            }
            let component = root(id(frontends[0]))
            for endpoint in frontends + backends {
                let other = root(id(endpoint))
                if other != component {
                    parent[other] = component
                    sticky[component] = sticky[component] || sticky[other]
                }
            }
            if entry.affinity != nil { sticky[component] = true }
            for endpoint in frontends { frontendIDs[endpoint] = ids[endpoint] }
            for endpoint in backends { backendIDs[endpoint] = ids[endpoint] }
        }
        var roles: [TransportEndpoint: Role] = [:]
        for (endpoint, id) in frontendIDs {
            roles[endpoint, default: []].insert(sticky[root(id)] ? [.frontend, .stickyFrontend] : .frontend)
        }
        for (endpoint, id) in backendIDs {
            roles[endpoint, default: []].insert(sticky[root(id)] ? [.backend, .stickyBackend] : .backend)
        }
        self.roles = roles
        rolePorts = PortSet((frontendIDs.keys.map(\.port) + backendIDs.keys.map(\.port)))
        stickyPorts = PortSet(roles.filter { !$0.value.isDisjoint(with: [.stickyFrontend, .stickyBackend]) }
            .map(\.key.port))
        frontendAddresses = Set(frontendIDs.keys.map(\.address)).subtracting(nodeAddresses)
        backendAddresses = Set(backendIDs.keys.map(\.address))
        self.nodeAddresses = nodeAddresses
    }

    /// The low byte of a frame's key: its shard of N is the residue modulo N.
    public func residue(of frame: UnsafeMutableRawBufferPointer, wireLength: Int, linkType: LinkType) -> UInt8 {
        UInt8(truncatingIfNeeded: key(of: frame, wireLength: wireLength, linkType: linkType))
    }

    /// The low byte of the key of a client of `frontend`: masquerading picks a port with this low byte, so that
    /// the replies to the node's address, keyed by that port, land in the client's shard.
    public func residue(ofClient address: IPv4Address, port: UInt16, toward frontend: Frontend) -> UInt8 {
        let endpoint = TransportEndpoint(address: frontend.address, port: frontend.port,
                                protocolNumber: frontend.serviceProtocol.number)
        let sticky = roles[endpoint]?.contains(.stickyFrontend) ?? false
        let key = Self.clientKey(address, port, sticky: sticky, nodeAddresses: nodeAddresses)
        return UInt8(truncatingIfNeeded: key)
    }

    private static func clientKey(_ address: IPv4Address, _ port: UInt16, sticky: Bool,
                                  nodeAddresses: [IPv4Address]) -> UInt64
    {
        if nodeAddresses.contains(address) { return UInt64(port) }
        return sticky ? FlowHash.hash(address) : FlowHash.hash(address, port: port)
    }

    /// The key of a frame, from the few fields it needs, read where a valid packet has them without validating the
    /// rest: a malformed packet, which the program passes unchanged and which changes no state, may go to any
    /// shard, as long as it is always the same one.
    private func key(of frame: UnsafeMutableRawBufferPointer, wireLength: Int, linkType: LinkType) -> UInt64 {
        guard let ipOffset = LinkHeader.ipv4(in: frame, linkType: linkType)?.offset, frame.count >= ipOffset + 20
        else { return 0 }
        let source = IPv4Address(frame.u32(ipOffset + 12))
        let destination = IPv4Address(frame.u32(ipOffset + 16))
        let protocolNumber = frame.u8(ipOffset + 9)
        let isLaterFragment = frame.u16(ipOffset + 6) & 0x1FFF != 0
        if !isLaterFragment, protocolNumber == IPProtocol.tcp || protocolNumber == IPProtocol.udp
            || protocolNumber == IPProtocol.sctp, let ports = IPv4Packet.unvalidatedPorts(in: frame, offset: ipOffset)
        {
            return key(of: FlowKey(source: source, destination: destination, sourcePort: ports.source,
                                   destinationPort: ports.destination, protocolNumber: protocolNumber))
        }
        if protocolNumber == IPProtocol.icmp, !isLaterFragment,
           let ip = try? IPv4Packet(frame: frame, offset: ipOffset, wireLength: wireLength),
           let icmp = try? ICMPv4Message(ip: ip), let quoted = try? QuotedDatagram(icmp: icmp)
        {
            return key(of: quoted.flow)
        }
        return addressKey(source: source, destination: destination)
    }

    /// The key of a packet with ports: its client side, found from the ports, else from the endpoints, then the
    /// frontends.
    @inline(__always)
    private func key(of flow: FlowKey) -> UInt64 {
        let source = flow.sourceEndpoint
        let destination = flow.destinationEndpoint
        let sourceIsService = rolePorts.contains(source.port)
        let destinationIsService = rolePorts.contains(destination.port)
        if sourceIsService != destinationIsService,
           !stickyPorts.contains(sourceIsService ? source.port : destination.port)
        {
            let client = sourceIsService ? destination : source
            return Self.clientKey(client.address, client.port, sticky: false, nodeAddresses: nodeAddresses)
        }
        // Endpoints first: a masqueraded reply comes from an endpoint to a node port number that may also be a
        // Service's node port.
        let sourceRole = sourceIsService ? roles[source] ?? [] : []
        let destinationRole = destinationIsService ? roles[destination] ?? [] : []
        let client: (endpoint: TransportEndpoint, sticky: Bool)?
        switch (sourceRole.contains(.backend), destinationRole.contains(.backend)) {
        case (false, true): client = (source, destinationRole.contains(.stickyBackend))
        case (true, false): client = (destination, sourceRole.contains(.stickyBackend))
        default:
            switch (sourceRole.contains(.frontend), destinationRole.contains(.frontend)) {
            case (false, true): client = (source, destinationRole.contains(.stickyFrontend))
            case (true, false): client = (destination, sourceRole.contains(.stickyFrontend))
            default: client = nil
            }
        }
        if let (endpoint, sticky) = client {
            return Self.clientKey(endpoint.address, endpoint.port, sticky: sticky, nodeAddresses: nodeAddresses)
        }
        let (low, high) = flow.source.value < flow.destination.value
            || (flow.source == flow.destination && flow.sourcePort <= flow.destinationPort)
            ? (source, destination) : (destination, source)
        return FlowHash.hash(FlowKey(source: low.address, destination: high.address, sourcePort: low.port,
                                     destinationPort: high.port, protocolNumber: flow.protocolNumber), seed: 0)
    }

    /// The key of a packet without ports (a later fragment, ICMP that quotes nothing): its client address when
    /// one side is a frontend or endpoint address and the other is not, else a symmetric hash of both.
    private func addressKey(source: IPv4Address, destination: IPv4Address) -> UInt64 {
        switch (frontendAddresses.contains(source) || backendAddresses.contains(source),
                frontendAddresses.contains(destination) || backendAddresses.contains(destination))
        {
        case (false, true): return FlowHash.hash(source)
        case (true, false): return FlowHash.hash(destination)
        default: return FlowHash.hash(min(source, destination)) ^ FlowHash.hash(max(source, destination))
        }
    }
}
