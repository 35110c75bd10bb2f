import Cluster
import Conntrack
import PacketWire

/// Settings of the service program.
public struct LoadBalancerConfiguration: Sendable {
    public var mode: LoadBalancingMode = .random
    public var seed: UInt64 = 0
    /// Maglev table size M (a prime) for `--lb maglev`; Cilium's default 16381.
    public var maglevTableSize = MaglevTable.defaultSize
    /// How the run's connections are sharded (built from every cluster state the run will apply): masquerade
    /// ports are chosen so that replies shard with their client. Without one, a program that masquerades
    /// builds its own from the states it is given.
    public var sharding: FlowSharding?
    /// Conntrack table size (`nf_conntrack_max`); kube-proxy sets at least 131072 on a node.
    public var conntrackMax = 262_144
    public var timeouts = ConntrackTimeouts()
    /// The node's addresses: node ports are served on each. The first is the source of ICMP rejects (when there
    /// is none, the rejected address itself) and of masqueraded traffic no `sourceRoutes` network holds.
    public var nodeAddresses: [IPv4Address] = []
    /// The node's name, for `Local` traffic policies (endpoints whose `nodeName` matches are local).
    public var nodeName: String?
    /// kube-proxy's `--cluster-cidr`: turns masquerading on (traffic from outside it to a ClusterIP, external
    /// traffic under policy Cluster, hairpin).
    public var clusterCIDR: IPv4Network?
    /// The node's networks with its address on each: masqueraded traffic to a backend leaves from the node's
    /// address on the longest-prefix network holding the backend.
    public var sourceRoutes: [IPv4Network] = []

    public init() {}
}

/// Stable numbers for backends (an endpoint of a frontend) across cluster changes, for per-backend counters
/// and conntrack tags: a backend keeps its number for the whole run, whatever tables come and go.
public struct BackendIndex: Sendable {
    private struct Identity: Hashable {
        var frontend: Frontend
        var address: IPv4Address
        var port: UInt16
    }

    private var numbers: [Identity: Int] = [:]
    /// Numbers of the current table's backends, by entry and backend position.
    private var current: [[Int]] = []
    /// Backends numbered so far.
    public var count: Int { numbers.count }

    init(_ table: ServiceTable) { load(table) }

    /// Numbers the backends of a new table, keeping the numbers of those seen before.
    mutating func load(_ table: ServiceTable) {
        numbers.reserveCapacity(numbers.count + table.entries.reduce(0) { $0 + $1.backends.count })
        current = table.entries.map { entry in
            entry.backends.map { backend in
                let identity = Identity(frontend: entry.frontend, address: backend.address, port: backend.port)
                if let known = numbers[identity] { return known }
                numbers[identity] = numbers.count
                return numbers.count - 1
            }
        }
    }

    public func global(entry: Int, backend: Int) -> Int { current[entry][backend] }
}

/// The XDP-style Service program: frontend lookup, backend choice, conntrack, DNAT and reverse NAT.
/// A pure function of the packet, its maps (service table, conntrack, selector state) and the packet's
/// timestamp; everything it does not own passes unchanged.
public struct ServiceLoadBalancer {
    public private(set) var table: ServiceTable
    public let linkType: LinkType
    public private(set) var backendIndex: BackendIndex
    public private(set) var conntrack: ConntrackTable
    public private(set) var stats: DataplaneStats
    /// Timestamp of the latest packet: the table's "now", never going back (like the kernel's jiffies) even
    /// when a merged capture has records out of order.
    public private(set) var clock: Int64 = 0
    /// Frames run or passed to `advanceClock` so far: a frame's number in the capture, also in a shard of it.
    public private(set) var framesSeen: UInt32 = 0

    private let configuration: LoadBalancerConfiguration
    private var selector: BackendSelector
    private var affinity = AffinityTable()
    private var policy: TrafficPolicy
    /// Nil when nothing is masqueraded (no cluster CIDR and none configured).
    private var sharding: FlowSharding?
    /// Every cluster state applied so far, for a sharding of the program's own.
    private var tablesSeen: [ServiceTable]
    /// Backends the capture's own replies show, consulted before the selector (shared by a run's programs).
    public let observed: CaptureReplies?

    public init(table: ServiceTable, linkType: LinkType, configuration: LoadBalancerConfiguration,
                observed: CaptureReplies? = nil)
    {
        self.table = table
        self.observed = observed
        self.linkType = linkType
        self.configuration = configuration
        backendIndex = BackendIndex(table)
        conntrack = ConntrackTable(capacity: configuration.conntrackMax)
        stats = DataplaneStats(backendCount: backendIndex.count)
        selector = BackendSelector(mode: configuration.mode, seed: configuration.seed,
                                   servicePorts: table.entries.count, maglevSize: configuration.maglevTableSize)
        policy = TrafficPolicy(table: table, nodeName: configuration.nodeName, clusterCIDR: configuration.clusterCIDR)
        tablesSeen = configuration.sharding == nil ? [table] : []
        sharding = configuration.sharding ?? configuration.clusterCIDR.map { _ in
            FlowSharding(tables: [table], nodeAddresses: configuration.nodeAddresses)
        }
    }

    /// Moves the program's clock to a packet it does not see (one of another shard), as that packet would.
    public mutating func advanceClock(to timestamp: Int64) {
        clock = max(clock, timestamp)
        framesSeen &+= 1
    }

    /// Runs the program on one packet.
    public mutating func run(_ context: inout XDPContext) -> XDPAction {
        advanceClock(to: context.timestamp)
        let frame = context.data
        let link: LinkHeader
        do { link = try LinkHeader(frame: frame, linkType: linkType) } catch { return stats.recordMalformed(error) }
        if link.isOutgoing { return stats.recordPass(.outgoing) }
        guard link.etherType == EtherType.ipv4 else { return stats.recordPass(.notIPv4) }
        let ip: IPv4Packet
        do {
            ip = try IPv4Packet(frame: frame, offset: link.networkOffset, wireLength: context.wireLength)
        } catch { return stats.recordMalformed(error) }
        let protocolNumber = ip.protocolNumber
        if ip.isLaterFragment { return stats.recordPass(.laterFragment) }
        guard protocolNumber == IPProtocol.tcp || protocolNumber == IPProtocol.udp
            || protocolNumber == IPProtocol.sctp
        else {
            if protocolNumber == IPProtocol.icmp && translateRelatedError(ip) {
                stats.record(.pass)
                return .pass
            }
            return stats.recordPass(.otherProtocol)
        }
        let transport: TransportHeader
        do { transport = try TransportHeader(ip: ip) } catch { return stats.recordMalformed(error) }
        let flow = FlowKey(ip: ip, transport: transport)
        let segment = protocolNumber == IPProtocol.tcp
            ? TCPSegmentSummary(TCPSegment(header: transport, ip: ip)) : nil
        let chunks = protocolNumber == IPProtocol.sctp
            ? SCTPChunks(frame: frame, offset: transport.offset, length: transport.length) : nil

        if let found = conntrack.lookup(flow, now: clock) {
            let (slot, direction) = (found.slot, found.direction)
            switch track(slot: slot, direction: direction, segment: segment, chunks: chunks) {
            case .invalid:
                return stats.recordDrop(.conntrackInvalid)
            case .reopen:
                conntrack.remove(slot: slot)
            case .deleted:
                translate(ip, transport, slot: slot, direction: direction)
                conntrack.remove(slot: slot)
                stats.record(.pass)
                return .pass
            case .accepted, .ignored:
                translate(ip, transport, slot: slot, direction: direction)
                stats.record(.pass)
                return .pass
            }
        }
        guard let serviceProtocol = ServiceProtocol(number: protocolNumber),
              let (entryIndex, scope) = table.lookup(Frontend(address: flow.destination, port: flow.destinationPort,
                                                              serviceProtocol: serviceProtocol),
                                                     nodeAddresses: configuration.nodeAddresses)
        else { return stats.recordPass(.notService) }
        return open(entryIndex, scope: scope, flow: flow, segment: segment, chunks: chunks, ip: ip,
                    transport: transport, link: link, context: &context)
    }

    /// Deletes the connection a translated packet belongs to (found by its reply tuple, the packet's own tuple
    /// reversed): for a packet the node then drops before the kernel would have confirmed the connection.
    public mutating func removeConnection(replyingTo packet: FlowKey) {
        let reply = FlowKey(source: packet.destination, destination: packet.source, sourcePort: packet.destinationPort,
                            destinationPort: packet.sourcePort, protocolNumber: packet.protocolNumber)
        if let (slot, _) = conntrack.lookup(reply, now: clock) { conntrack.remove(slot: slot) }
    }

    /// Protocol tracking of a found entry at the program's clock.
    private mutating func track(slot: Int, direction: ConntrackDirection, segment: TCPSegmentSummary?,
                                chunks: SCTPChunks?) -> TrackingOutcome
    {
        conntrack.track(slot: slot, direction: direction, segment: segment, chunks: chunks, now: clock,
                        timeouts: configuration.timeouts)
    }

    /// A first packet to a frontend: reject without endpoints, drop without local ones under a Local policy,
    /// else choose a backend, masquerade if kube-proxy would, track and translate.
    private mutating func open(_ entryIndex: Int, scope: TrafficScope, flow: FlowKey, segment: TCPSegmentSummary?,
                               chunks: SCTPChunks?, ip: IPv4Packet, transport: TransportHeader, link: LinkHeader,
                               context: inout XDPContext) -> XDPAction
    {
        if let segment, ConnectionTracker.openingState(for: segment.flags) == nil {
            return stats.recordDrop(.conntrackInvalid)  // not NEW: neither balanced nor rejected
        }
        if let chunks, !ConnectionTracker.sctpCanOpen(chunks) { return stats.recordDrop(.conntrackInvalid) }
        let entry = table.entries[entryIndex]
        guard !entry.usableBackends.isEmpty else {
            stats.rejected += 1
            context.generatedLength = ICMPErrorReply.write(
                .portUnreachable, about: context.data, link: link, linkType: linkType, ip: ip,
                from: configuration.nodeAddresses.first ?? flow.destination, into: context.generated)
            stats.record(.tx)
            return .tx
        }
        if !entry.loadBalancerSourceRanges.isEmpty, entry.loadBalancerIPs.contains(flow.destination),
           !entry.loadBalancerSourceRanges.contains(where: { $0.contains(flow.source) })
        {
            return stats.recordDrop(.loadBalancerFirewall)
        }
        let (candidates, local) = policy.candidates(table, entry: entryIndex, scope: scope, source: flow.source)
        guard !candidates.isEmpty else { return stats.recordDrop(.noLocalEndpoints) }
        let captured = observed?.choice(for: flow, at: context.timestamp, clock: clock, entry: entry,
                                        among: candidates)
        let backendPosition = captured
            ?? affinity.pinnedBackend(client: flow.source, in: entry, among: candidates, now: clock)
            ?? candidates[selector.choose(entryIndex: entryIndex, entry: entry, candidates: candidates, local: local,
                                          flow: flow, timestamp: context.timestamp)]
        let backend = entry.backends[backendPosition]
        let global = backendIndex.global(entry: entryIndex, backend: backendPosition)
        var reply = FlowKey(source: backend.address, destination: flow.source, sourcePort: backend.port,
                            destinationPort: flow.sourcePort, protocolNumber: flow.protocolNumber)
        if policy.masquerades(entry, scope: scope, source: flow.source, backend: backend.address) {
            let frontend = Frontend(address: flow.destination, port: flow.destinationPort,
                                    serviceProtocol: entry.frontend.serviceProtocol)
            guard let masqueraded = masquerade(flow, toward: reply, frontend: frontend) else {
                return stats.recordDrop(.insertFailed)
            }
            reply = masqueraded
            stats.masqueraded += 1
        }
        let slot: Int
        switch conntrack.insert(original: flow, reply: reply, now: clock, tag: UInt32(global),
                                  serial: framesSeen) {
        case .success(let inserted): slot = inserted
        case .failure(.full): return stats.recordDrop(.tableFull)
        case .failure(.clash): return stats.recordDrop(.insertFailed)
        }
        if entry.affinity != nil { affinity.set(client: flow.source, backend: backend, on: entry, now: clock) }
        _ = track(slot: slot, direction: .original, segment: segment, chunks: chunks)  // an opening packet
        stats.newConnections += 1
        if captured != nil { stats.connectionsFromCapture += 1 }
        stats.recordConnection(backend: global)
        translate(ip, transport, slot: slot, direction: .original)
        stats.record(.pass)
        return .pass
    }

    /// The reply tuple of a masqueraded connection: the backend answers the node's address toward it, on a port
    /// chosen as `MASQUERADE --random-fully` does (kube-proxy asks for it): anywhere in the source port's class
    /// (1-511, 600-1023 or 1024-65535), here from a hash of the seed and the tuple so that runs repeat, moving on
    /// while the tuple is taken. Ports whose low byte is the client's shard residue come first, so that the
    /// replies shard with the client (`FlowSharding`). Nil when there is no node address or no free port.
    private func masquerade(_ flow: FlowKey, toward reply: FlowKey, frontend: Frontend) -> FlowKey? {
        var route: IPv4Network?
        for network in configuration.sourceRoutes where network.contains(reply.source) {
            if network.prefixLength > route?.prefixLength ?? -1 { route = network }
        }
        guard let address = route?.address ?? configuration.nodeAddresses.first else { return nil }
        let (first, count): (Int, Int) = flow.sourcePort >= 1024 ? (1024, 64512)
            : flow.sourcePort >= 512 ? (600, 424) : (1, 511)
        let hash = FlowHash.hash(flow, seed: configuration.seed, salt: 0x6D61_7371)
        func free(_ port: Int) -> FlowKey? {
            let candidate = FlowKey(source: reply.source, destination: address, sourcePort: reply.sourcePort,
                                    destinationPort: UInt16(port), protocolNumber: flow.protocolNumber)
            return conntrack.contains(candidate) ? nil : candidate
        }
        if let sharding {
            let residue = Int(sharding.residue(ofClient: flow.source, port: flow.sourcePort, toward: frontend))
            let firstInResidue = first + (residue - first % 256 + 256) % 256
            let inResidue = firstInResidue < first + count ? (first + count - 1 - firstInResidue) / 256 + 1 : 0
            let start = FlowHash.index(hash, count: inResidue)
            for attempt in 0..<inResidue {
                if let tuple = free(firstInResidue + 256 * ((start + attempt) % inResidue)) { return tuple }
            }
        }
        let start = FlowHash.index(hash, count: count)
        for attempt in 0..<count {
            if let tuple = free(first + (start + attempt) % count) { return tuple }
        }
        return nil
    }

    /// Translates an ICMP error about a tracked connection (conntrack's RELATED) as the kernel's
    /// `nf_nat_icmp_reply_translation` does at its two NAT hooks: the quoted datagram becomes the packet its
    /// sender really sent, and the outer addresses follow, so that the error reaches the right host and matches
    /// its socket. False when the message is not such an error.
    private mutating func translateRelatedError(_ ip: IPv4Packet) -> Bool {
        guard let icmp = try? ICMPv4Message(ip: ip), let quoted = try? QuotedDatagram(icmp: icmp) else { return false }
        let inner = quoted.flow
        let key = FlowKey(source: inner.destination, destination: inner.source, sourcePort: inner.destinationPort,
                          destinationPort: inner.sourcePort, protocolNumber: inner.protocolNumber)
        guard let (slot, direction) = conntrack.lookup(key, now: clock) else { return false }
        let entry = conntrack[slot]
        let other = direction == .original ? entry.reply : entry.original
        let destinationNAT = entry.original.destination != entry.reply.source
            || entry.original.destinationPort != entry.reply.sourcePort
        let sourceNAT = entry.original.source != entry.reply.destination
            || entry.original.sourcePort != entry.reply.destinationPort
        if direction == .original ? destinationNAT : sourceNAT {  // the destination-rewriting hook (PREROUTING)
            quoted.setSource(other.source, port: other.sourcePort)
            ip.destination = other.source
        }
        if direction == .original ? sourceNAT : destinationNAT {  // the source-rewriting hook (POSTROUTING)
            quoted.setDestination(other.destination, port: other.destinationPort)
            ip.source = other.destination
        }
        stats.translatedRelated += 1
        return true
    }

    /// DNAT (and SNAT) in the original direction, their reverse in the reply direction, from the entry's tuples:
    /// each end rewritten by `TransportHeader.rewrite`.
    private mutating func translate(_ ip: IPv4Packet, _ transport: TransportHeader, slot: Int,
                                    direction: ConntrackDirection)
    {
        let entry = conntrack[slot]
        stats.recordPacket(backend: Int(entry.tag))
        // Both ends, from the two tuples: the client's end changes too when the connection is masqueraded (the
        // packet's client end is the client's own otherwise, which its tuple matched).
        let masqueraded = entry.reply.destination != entry.original.source
            || entry.reply.destinationPort != entry.original.sourcePort
        switch direction {
        case .original:
            transport.rewrite(.destination, of: ip, address: entry.reply.source, port: entry.reply.sourcePort)
            if masqueraded {
                transport.rewrite(.source, of: ip, address: entry.reply.destination, port: entry.reply.destinationPort)
            }
            stats.translatedOriginal += 1
        case .reply:
            transport.rewrite(.source, of: ip, address: entry.original.destination,
                              port: entry.original.destinationPort)
            if masqueraded {
                transport.rewrite(.destination, of: ip, address: entry.original.source,
                                  port: entry.original.sourcePort)
            }
            stats.translatedReply += 1
        }
    }
}

/// What one cluster change did to the dataplane.
public struct ClusterChange: Sendable, Encodable, Equatable {
    /// One service port whose endpoints changed.
    public struct Moved: Sendable, Encodable, Equatable {
        public var servicePort: String
        public var added: [String]
        public var removed: [String]
    }

    /// Where the new state came from (the manifest path), set by whoever applies the change.
    public var source = ""
    /// Capture time of the change, nanoseconds since the Unix epoch.
    public var time: Int64
    public var moved: [Moved]
    /// UDP conntrack entries deleted because their endpoint is gone (kube-proxy's stale UDP cleanup).
    public var udpEntriesDeleted: Int
    /// TCP connections whose endpoint is gone; they are left to fail, as on a node.
    public var tcpEntriesOrphaned: Int
}

extension ServiceLoadBalancer {
    /// Replaces the cluster state, as kube-proxy's next sync does: new connections see only the new
    /// endpoints; connections in flight keep theirs; UDP entries whose endpoint is gone are deleted so the
    /// next datagram picks a live one; TCP entries to a removed endpoint stay and fail as they would.
    /// Round-robin positions start again.
    public mutating func apply(_ newTable: ServiceTable) -> ClusterChange {
        var moved: [ClusterChange.Moved] = []
        func usable(_ entry: ServicePortEntry?) -> Set<String> {
            Set(entry.map { entry in entry.usableBackends.map { entry.backends[$0].description } } ?? [])
        }
        for entry in newTable.entries {
            let before = usable(table.entry(for: entry.frontend))
            let after = usable(entry)
            if before != after {
                moved.append(.init(servicePort: entry.name.description, added: after.subtracting(before).sorted(),
                                   removed: before.subtracting(after).sorted()))
            }
        }
        for entry in table.entries where newTable.entry(for: entry.frontend) == nil {
            moved.append(.init(servicePort: entry.name.description, added: [], removed: usable(entry).sorted()))
        }
        var change = ClusterChange(time: clock, moved: moved, udpEntriesDeleted: 0, tcpEntriesOrphaned: 0)
        for (slot, entry) in conntrack.liveEntries(at: clock) {
            guard let protocolNumber = ServiceProtocol(number: entry.original.protocolNumber) else { continue }
            let frontend = Frontend(address: entry.original.destination, port: entry.original.destinationPort,
                                    serviceProtocol: protocolNumber)
            let servicePort = newTable.lookup(frontend, nodeAddresses: configuration.nodeAddresses)
                .map { newTable.entries[$0.index] }
            let live = servicePort?.usableBackends.contains {
                servicePort!.backends[$0].address == entry.reply.source
                    && servicePort!.backends[$0].port == entry.reply.sourcePort
            } ?? false
            guard !live else { continue }
            if protocolNumber == .udp {
                conntrack.remove(slot: slot)
                change.udpEntriesDeleted += 1
            } else {
                change.tcpEntriesOrphaned += 1
            }
        }
        table = newTable
        backendIndex.load(newTable)
        stats.growBackends(to: backendIndex.count)
        selector = BackendSelector(mode: configuration.mode, seed: configuration.seed,
                                   servicePorts: newTable.entries.count, maglevSize: configuration.maglevTableSize)
        policy.load(newTable)
        if configuration.sharding == nil, configuration.clusterCIDR != nil {
            tablesSeen.append(newTable)
            sharding = FlowSharding(tables: tablesSeen, nodeAddresses: configuration.nodeAddresses)
        }
        return change
    }
}

extension ServiceProtocol {
    /// The Service protocol for an IP protocol number, nil for those Services do not name.
    init?(number: UInt8) {
        switch number {
        case IPProtocol.tcp: self = .tcp
        case IPProtocol.udp: self = .udp
        case IPProtocol.sctp: self = .sctp
        default: return nil
        }
    }
}
