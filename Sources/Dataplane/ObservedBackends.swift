import Cluster
import PacketWire

/// The backends a recorded node actually gave its connections, read from the pods' replies in a capture.
///
/// A capture taken on a node holds the pods' answers, so it already says which pod served each connection.
/// Replaying it with an independent choice would send a client's packets to one pod while the capture's
/// replies come from another. With these observations the program gives a new connection the backend whose
/// reply to that client address and port comes next in the capture, when that backend is still usable;
/// connections the capture does not decide are left to the selector. Filled as the capture is read, ahead of
/// the programs (`CaptureReplies` shares it between threads).
public struct ObservedBackends: Sendable {
    /// One reply seen from a backend to a client port.
    struct Observation: Sendable {
        var time: Int64
        var lastSeen: Int64
        var backend: TransportEndpoint
    }


    /// The backends, and their ports (to skip the lookup for other ports).
    private let backends: Set<TransportEndpoint>
    private let backendPorts: PortSet
    /// Client address, port and protocol to observations in time order.
    private var observations: [TransportEndpoint: [Observation]] = [:]
    private let udpTimeout: Int64

    /// Observes replies from the endpoints of any of `tables` (the initial state and every `--apply` state).
    public init(tables: [ServiceTable], udpTimeoutSeconds: Int64) {
        let endpoints = tables.flatMap(\.entries).flatMap { entry in
            let protocolNumber = entry.frontend.serviceProtocol.number
            return entry.backends.map {
                TransportEndpoint(address: $0.address, port: $0.port, protocolNumber: protocolNumber)
            }
        }
        backends = Set(endpoints)
        backendPorts = PortSet(endpoints.map(\.port))
        udpTimeout = udpTimeoutSeconds * 1_000_000_000
    }

    /// Whether any backend answered in the capture.
    public var isEmpty: Bool { observations.isEmpty }

    /// A reply seen from a backend to a client port, in the capture's frame number `frame` (from 0).
    public struct Sighting: Sendable {
        let frame: Int
        let backend: TransportEndpoint
        let client: TransportEndpoint
        let startsConnection: Bool
        let time: Int64
    }

    /// The sighting the capture's frame number `frame` is, if it comes from a backend and may change the
    /// observations (decoding only: they do not change). A later segment of a pair in `reported`, which would
    /// change none, is passed over without decoding; the pair of a TCP sighting returned is added to `reported`.
    public func sighting(in bytes: UnsafeMutableRawBufferPointer, frame: Int, linkType: LinkType, wireLength: Int,
                         timestamp: Int64, reported: inout ReportedPairs) -> Sighting?
    {
        guard let (networkOffset, isOutgoing) = LinkHeader.ipv4(in: bytes, linkType: linkType), !isOutgoing,
              mayComeFromBackend(bytes, networkOffset: networkOffset),
              !reported.repeats(bytes, networkOffset: networkOffset),
              let ip = try? IPv4Packet(frame: bytes, offset: networkOffset, wireLength: wireLength),
              ip.protocolNumber == IPProtocol.tcp || ip.protocolNumber == IPProtocol.udp, !ip.isLaterFragment,
              let transport = try? TransportHeader(ip: ip)
        else { return nil }
        let flow = FlowKey(ip: ip, transport: transport)
        let backend = flow.sourceEndpoint
        guard backendPorts.contains(backend.port), backends.contains(backend) else { return nil }
        let isTCP = ip.protocolNumber == IPProtocol.tcp
        if isTCP { reported.insert(backend: backend, client: flow.destinationEndpoint) }
        let isSynAck = isTCP && TCPSegment(header: transport, ip: ip).flags.isSuperset(of: [.syn, .ack])
        return Sighting(frame: frame, backend: backend, client: flow.destinationEndpoint, startsConnection: isSynAck,
                        time: timestamp)
    }

    /// False when the frame's IPv4 packet does not come from a backend port, by the source port read before the
    /// packet is validated (about half the frames are the clients' own, which this skips at the cost of a few
    /// loads); true when the ports cannot be read, which the decoding then rejects.
    @inline(__always)
    private func mayComeFromBackend(_ bytes: UnsafeMutableRawBufferPointer, networkOffset: Int) -> Bool {
        guard let ports = IPv4Packet.unvalidatedPorts(in: bytes, offset: networkOffset) else { return true }
        return backendPorts.contains(ports.source)
    }

    /// Records a sighting: a TCP SYN/ACK, the first packet of a backend and client port pair, or a UDP datagram
    /// after more than a UDP timeout of silence starts an observation; other packets extend the pair's latest.
    public mutating func record(_ sighting: Sighting) {
        // Another TCP packet of a pair already seen changes nothing (the time of a pair's last packet matters to
        // UDP alone): found without the cost of changing the map.
        if sighting.backend.protocolNumber == IPProtocol.tcp, !sighting.startsConnection,
           observations[sighting.client]?.contains(where: { $0.backend == sighting.backend }) == true
        {
            return
        }
        Self.record(&observations[sighting.client, default: []], backend: sighting.backend,
                    startsConnection: sighting.startsConnection, at: sighting.time, udpTimeout: udpTimeout)
    }

    /// Extends the pair's latest observation, or starts a new one for a new connection.
    /// (Static, so that updating one list in place never copies the whole map.)
    private static func record(_ list: inout [Observation], backend: TransportEndpoint, startsConnection: Bool,
                               at timestamp: Int64, udpTimeout: Int64)
    {
        if let last = list.lastIndex(where: { $0.backend == backend }), !startsConnection,
           backend.protocolNumber == IPProtocol.tcp || timestamp - list[last].lastSeen <= udpTimeout
        {
            list[last].lastSeen = timestamp
        } else {
            list.append(Observation(time: timestamp, lastSeen: timestamp, backend: backend))
        }
    }

    /// The position in `entry.backends` of the backend among `candidates` that answered `flow`'s client next after
    /// `time`, among the sightings recorded so far.
    func choice(for flow: FlowKey, at time: Int64, entry: ServicePortEntry, among candidates: [Int]) -> Int? {
        guard let list = observations[flow.sourceEndpoint] else { return nil }
        for observation in list where observation.time >= time {
            if let position = candidates.first(where: {
                entry.backends[$0].address == observation.backend.address
                    && entry.backends[$0].port == observation.backend.port
            }) {
                return position
            }
        }
        return nil
    }
}
