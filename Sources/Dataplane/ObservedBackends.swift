import Cluster
import DequeModule
import PacketWire

/// The backends a recorded node actually gave its connections, read from the pods' replies in a capture.
///
/// A capture taken on a node holds the pods' answers, so it already says which pod served each connection.
/// Replaying it with an independent choice would send a client's packets to one pod while the capture's
/// replies come from another. With these observations the program gives a new connection the backend whose
/// reply to that client address and port comes next in the capture, when that backend is still usable;
/// connections the capture does not decide are left to the selector. Filled as the capture is read, ahead of
/// the programs (`CaptureReplies` shares it between threads).
///
/// Only replies within a horizon of capture time around a program's clock count (`horizon`: two minutes, about
/// as long as a TCP client tries to connect, or the UDP timeout if longer). A TCP pair's observation goes on while
/// its replies come in each period of capture time (half a horizon, counted from the Unix epoch) or the one
/// after; a pair silent for longer starts a new observation when its replies resume (a UDP pair, after a UDP
/// timeout of silence). So what lies a horizon behind every program is forgotten (`forget(before:)`) without
/// changing any answer: memory holds the connections of a few minutes of capture, however long the capture.
public struct ObservedBackends: Sendable {
    /// Replies seen from a backend to a client port, from one connection's first.
    struct Observation: Sendable {
        /// The first reply's timestamp.
        var time: Int64
        /// The capture clock (the latest timestamp up to a frame) at the first reply, and at the latest.
        var recorded: Int64
        var lastSeen: Int64
        var backend: TransportEndpoint
    }

    /// Capture time around a program's clock within which replies count, in nanoseconds.
    public let horizon: Int64
    /// The length of the periods that keep a TCP pair's observation going, half a horizon.
    let period: Int64
    private let udpTimeout: Int64
    /// The backends, and their ports (to skip the lookup for other ports).
    private let backends: Set<TransportEndpoint>
    @usableFromInline let backendPorts: PortSet
    /// Client address, port and protocol to observations in the order recorded.
    private(set) var observations: [TransportEndpoint: [Observation]] = [:]
    /// The clients with observations, in the order to look at them when forgetting, each with the capture clock of
    /// its latest observation's last reply when queued.
    private var forgettingQueue: Deque<(client: TransportEndpoint, lastSeen: Int64)> = []
    /// Observations held.
    public private(set) var count = 0

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
        horizon = max(120 * 1_000_000_000, udpTimeout)
        period = horizon / 2
    }

    /// A reply seen from a backend to a client port, in the capture's frame number `frame` (from 0).
    public struct Sighting: Sendable {
        let frame: Int
        let backend: TransportEndpoint
        let client: TransportEndpoint
        let startsConnection: Bool
        /// The packet's timestamp, and the capture clock at its frame (the latest timestamp up to it).
        let time: Int64
        let clock: Int64
    }

    /// A clock for a pass over the capture, to give `candidateOffset` and `sighting`.
    public func captureClock() -> CaptureClock { CaptureClock(periodLength: period) }

    /// Where the IPv4 packet of a frame starts, if the frame may be a sighting that changes the observations, at
    /// capture clock `clock` (moved to the frame's timestamp); nil, from a few fields read before anything is
    /// decoded, for most frames: those not arriving from a backend port, and the later segments of a pair that
    /// `reported` holds for the clock's period, which would change none. A pass looks at every frame so, and
    /// decodes the others (`sighting(in:networkOffset:...)`). (Inlinable: asked of every frame.)
    @inlinable
    public func candidateOffset(in bytes: UnsafeMutableRawBufferPointer, linkType: LinkType, clock: CaptureClock,
                                reported: ReportedPairs) -> Int?
    {
        guard let (networkOffset, isOutgoing) = LinkHeader.ipv4(in: bytes, linkType: linkType), !isOutgoing,
              mayComeFromBackend(bytes, networkOffset: networkOffset),
              !reported.repeats(bytes, networkOffset: networkOffset, period: clock.period)
        else { return nil }
        return networkOffset
    }

    /// The sighting the capture's frame number `frame` is, a candidate whose IPv4 packet starts at `networkOffset`
    /// (`candidateOffset`), at capture clock `clock`, if it comes from a backend (decoding only: the observations
    /// do not change); the pair of a TCP sighting returned is added to `reported`.
    public func sighting(in bytes: UnsafeMutableRawBufferPointer, networkOffset: Int, frame: Int, wireLength: Int,
                         timestamp: Int64, clock: CaptureClock, reported: inout ReportedPairs) -> Sighting?
    {
        guard let ip = try? IPv4Packet(frame: bytes, offset: networkOffset, wireLength: wireLength),
              ip.protocolNumber == IPProtocol.tcp || ip.protocolNumber == IPProtocol.udp, !ip.isLaterFragment,
              let transport = try? TransportHeader(ip: ip)
        else { return nil }
        let flow = FlowKey(ip: ip, transport: transport)
        let backend = flow.sourceEndpoint
        guard backends.contains(backend) else { return nil }  // its port is a backend's (`candidateOffset`)
        let isTCP = ip.protocolNumber == IPProtocol.tcp
        if isTCP { reported.insert(backend: backend, client: flow.destinationEndpoint, period: clock.period) }
        let isSynAck = isTCP && TCPSegment(header: transport, ip: ip).flags.isSuperset(of: [.syn, .ack])
        return Sighting(frame: frame, backend: backend, client: flow.destinationEndpoint, startsConnection: isSynAck,
                        time: timestamp, clock: clock.time)
    }

    /// False when the frame's IPv4 packet does not come from a backend port, by the source port read before the
    /// packet is validated (about half the frames are the clients' own, which this skips at the cost of a few
    /// loads); true when the ports cannot be read, which the decoding then rejects.
    @inlinable
    func mayComeFromBackend(_ bytes: UnsafeMutableRawBufferPointer, networkOffset: Int) -> Bool {
        guard let ports = IPv4Packet.unvalidatedPorts(in: bytes, offset: networkOffset) else { return true }
        return backendPorts.contains(ports.source)
    }

    /// Records a sighting, in capture order. A TCP SYN/ACK starts an observation; another reply extends its pair's
    /// latest observation if that was last seen in the same period or the one before (for UDP, within a UDP
    /// timeout before it), else starts one.
    public mutating func record(_ sighting: Sighting) {
        if observations[sighting.client] == nil { forgettingQueue.append((sighting.client, sighting.clock)) }
        let earliest = sighting.backend.protocolNumber == IPProtocol.udp
            ? sighting.clock - udpTimeout
            : (CaptureClock.number(of: sighting.clock, in: period) - 1) * period  // the previous period's start
        if Self.record(sighting, in: &observations[sighting.client, default: []], goingOnSince: earliest) {
            count += 1
        }
    }

    /// Extends the pair's latest observation if it was last seen at `earliest` or later, else starts one; true if
    /// it started one. (Static, so that updating one list in place never copies the whole map.)
    private static func record(_ sighting: Sighting, in list: inout [Observation], goingOnSince earliest: Int64)
        -> Bool
    {
        if !sighting.startsConnection, let latest = list.lastIndex(where: { $0.backend == sighting.backend }),
           list[latest].lastSeen >= earliest
        {
            list[latest].lastSeen = max(list[latest].lastSeen, sighting.clock)
            return false
        }
        list.append(Observation(time: sighting.time, recorded: sighting.clock, lastSeen: sighting.clock,
                                backend: sighting.backend))
        return true
    }

    /// Forgets the observations no program can ask about again and no sighting can extend, every program having
    /// reached capture clock `clock`: those last seen more than a horizon before it (two periods, and the UDP
    /// timeout at least). Looks only at the clients queued with an older clock, queueing again those with
    /// observations left.
    public mutating func forget(before clock: Int64) {
        let limit = clock - horizon
        while let (client, lastSeen) = forgettingQueue.first, lastSeen < limit {
            forgettingQueue.removeFirst()
            let held = observations[client]?.count ?? 0
            observations[client]?.removeAll { $0.lastSeen < limit }
            count -= held - (observations[client]?.count ?? 0)
            if let latest = observations[client]?.lazy.map(\.lastSeen).max() {
                forgettingQueue.append((client, latest))
            } else {
                observations[client] = nil
            }
        }
    }

    /// The position in `entry.backends` of the backend among `candidates` whose reply to `flow`'s client is the
    /// first recorded that was sent at `time` or later, within the horizon around the program's clock `clock`.
    func choice(for flow: FlowKey, at time: Int64, clock: Int64, entry: ServicePortEntry,
                among candidates: [Int]) -> Int?
    {
        guard let list = observations[flow.sourceEndpoint] else { return nil }
        let earliest = max(time, clock - horizon)
        for observation in list where observation.time >= earliest && observation.recorded <= clock + horizon {
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

/// The capture clock of a pass over a capture, the latest timestamp of the frames it has seen, and the number of
/// the period of capture time that holds it (`ObservedBackends.period`, counted from the Unix epoch).
public struct CaptureClock: Sendable {
    /// The latest timestamp.
    public var time: Int64 { latest }
    @usableFromInline var latest = Int64.min
    @usableFromInline var period: Int64 = 0
    /// Where the period ends, after which its number is worked out again (a division, once a period).
    @usableFromInline var periodEnd = Int64.min
    @usableFromInline let periodLength: Int64

    init(periodLength: Int64) {
        self.periodLength = periodLength
    }

    /// Moves the clock to a frame's timestamp, if later. (Inlinable: a pass moves it at every frame.)
    @inlinable public mutating func advance(to timestamp: Int64) {
        guard timestamp > latest else { return }
        latest = timestamp
        if latest >= periodEnd {
            period = Self.number(of: latest, in: periodLength)
            periodEnd = (period + 1) * periodLength
        }
    }

    /// The number of the period of length `length` that holds capture time `time`, counted from the Unix epoch.
    @usableFromInline static func number(of time: Int64, in length: Int64) -> Int64 {
        time >= 0 ? time / length : (time + 1) / length - 1
    }
}
