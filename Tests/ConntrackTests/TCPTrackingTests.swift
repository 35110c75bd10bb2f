import Conntrack
import PacketWire
import TestSupport
import Testing

/// Drives one TCP connection through the tracker like the kernel sees it, packet by packet.
struct Connection {
    var entry: ConntrackEntry
    var timeouts = ConntrackTimeouts()
    var now: Int64 = 1_000_000_000_000

    init() {
        let original = FlowKey(source: IPv4Address("10.0.1.2")!, destination: IPv4Address("10.96.148.206")!,
                               sourcePort: 55434, destinationPort: 80, protocolNumber: IPProtocol.tcp)
        let reply = FlowKey(source: IPv4Address("10.244.1.11")!, destination: original.source, sourcePort: 9376,
                            destinationPort: 55434, protocolNumber: IPProtocol.tcp)
        var table = ConntrackTable(capacity: 4)
        let slot = try! table.insert(original: original, reply: reply, now: now, tag: 0, serial: 0).get()
        entry = table[slot]
    }

    /// Feeds a segment; marks the reply as seen as `nf_conntrack_in` does.
    @discardableResult
    mutating func send(_ direction: ConntrackDirection, _ flags: TCPFlags, seq: UInt32, ack: UInt32 = 0,
                       length: Int = 0, window: UInt16 = 502, after seconds: Double = 0.001) -> TrackingOutcome
    {
        now += Int64(seconds * 1e9)
        let outcome = ConnectionTracker.trackTCP(
            &entry, direction: direction,
            segment: TCPSegmentSummary(flags: flags, sequence: seq, acknowledgement: ack, payloadLength: length,
                                       window: window),
            now: now, timeouts: timeouts)
        if direction == .reply, outcome == .accepted || outcome == .ignored { entry.seenReply = true }
        return outcome
    }

    var secondsLeft: Int64 { entry.secondsLeft(at: now) }

    /// The three-way handshake: client ISN 100, server ISN 500.
    mutating func handshake() {
        send(.original, [.syn], seq: 100)
        send(.reply, [.syn, .ack], seq: 500, ack: 101)
        send(.original, [.ack], seq: 101, ack: 501)
    }
}

@Suite("TCP connection tracking")
struct TCPTrackingTests {
    @Test("handshake, request, answer and close follow the kernel's states and timeouts")
    func fullConnection() {
        var c = Connection()
        #expect(c.send(.original, [.syn], seq: 100) == .accepted)
        #expect(c.entry.tcpState == .synSent && c.secondsLeft == 120 && !c.entry.seenReply)
        c.send(.reply, [.syn, .ack], seq: 500, ack: 101)
        #expect(c.entry.tcpState == .synRecv && c.secondsLeft == 60 && !c.entry.assured)
        c.send(.original, [.ack], seq: 101, ack: 501)
        #expect(c.entry.tcpState == .established && c.entry.assured && c.secondsLeft == 432_000)
        c.send(.original, [.ack, .psh], seq: 101, ack: 501, length: 78)
        #expect(c.secondsLeft == 300, "unacknowledged data caps the timeout")
        c.send(.reply, [.ack], seq: 501, ack: 179)
        #expect(c.secondsLeft == 432_000)
        c.send(.reply, [.ack, .psh], seq: 501, ack: 179, length: 200)
        c.send(.reply, [.fin, .ack], seq: 701, ack: 179)
        #expect(c.entry.tcpState == .finWait)
        c.send(.original, [.ack], seq: 179, ack: 702)
        #expect(c.entry.tcpState == .closeWait && c.secondsLeft == 60)
        c.send(.original, [.fin, .ack], seq: 179, ack: 702)
        #expect(c.entry.tcpState == .lastAck && c.secondsLeft == 30)
        c.send(.reply, [.ack], seq: 702, ack: 180)
        #expect(c.entry.tcpState == .timeWait && c.secondsLeft == 120)
    }

    @Test("a RST as the only reply deletes the entry")
    func refused() {
        var c = Connection()
        c.send(.original, [.syn], seq: 100)
        #expect(c.send(.reply, [.rst, .ack], seq: 0, ack: 101) == .deleted)
    }

    @Test("a RST after a reply closes with the CLOSE timeout")
    func resetEstablished() {
        var c = Connection()
        c.handshake()
        #expect(c.send(.original, [.rst], seq: 101) == .accepted)
        #expect(c.entry.tcpState == .close && c.secondsLeft == 10)
    }

    @Test("a new SYN on a closed connection reopens it")
    func reopen() {
        var c = Connection()
        c.handshake()
        c.send(.original, [.fin, .ack], seq: 101, ack: 501)
        c.send(.reply, [.fin, .ack], seq: 501, ack: 102)
        c.send(.original, [.ack], seq: 102, ack: 502)
        #expect(c.entry.tcpState == .timeWait)
        #expect(c.send(.original, [.syn], seq: 9000) == .reopen)
    }

    @Test("SYN retransmits do not refresh; invalid flags and out-of-state packets are invalid")
    func retransmitAndInvalid() {
        var c = Connection()
        c.send(.original, [.syn], seq: 100)
        c.send(.original, [.syn], seq: 100, after: 3)
        #expect(c.secondsLeft == 117)
        #expect(c.send(.original, [.syn, .fin], seq: 100) == .invalid)
        #expect(c.send(.original, [], seq: 100) == .invalid)
        #expect(c.send(.reply, [.fin, .ack], seq: 1, ack: 1) == .invalid)
        #expect(c.entry.tcpState == .synSent)
        #expect(c.send(.reply, [.ack], seq: 1, ack: 1) == .ignored)
    }

    @Test("a mid-connection ACK is picked up as ESTABLISHED with the unacknowledged cap")
    func loosePickup() {
        #expect(ConnectionTracker.openingState(for: [.ack]) == .established)
        #expect(ConnectionTracker.openingState(for: [.ack, .psh]) == .established)
        #expect(ConnectionTracker.openingState(for: [.syn]) == .synSent)
        #expect(ConnectionTracker.openingState(for: [.fin, .ack]) == nil)
        #expect(ConnectionTracker.openingState(for: [.rst]) == nil)
        #expect(ConnectionTracker.openingState(for: [.syn, .ack]) == nil)
        var c = Connection()
        c.send(.original, [.ack], seq: 100, ack: 500)
        #expect(c.entry.tcpState == .established && c.secondsLeft == 300 && !c.entry.assured)
        c.send(.reply, [.ack], seq: 500, ack: 100)
        c.send(.original, [.ack], seq: 100, ack: 500, window: 600)
        #expect(c.entry.assured)
    }

    @Test("every state and flag class leads only to states of the table", arguments: TCPState.allCases)
    func transitionsStayInTable(from state: TCPState) {
        let flagSets: [TCPFlags] = [[.syn], [.syn, .ack], [.fin, .ack], [.ack], [.rst], [.rst, .ack], [.psh, .ack],
                                    [], [.syn, .fin], [.fin]]
        for direction in [ConntrackDirection.original, .reply] {
            for flags in flagSets {
                var c = Connection()
                c.entry.tcpState = state
                c.entry.seenReply = true
                let before = c.entry
                let outcome = c.send(direction, flags, seq: 1, ack: 1)
                if outcome == .invalid || outcome == .ignored {
                    #expect(c.entry.tcpState == before.tcpState)
                    #expect(c.entry.expires == before.expires)
                }
            }
        }
    }
}

@Suite("UDP connection tracking")
struct UDPTrackingTests {
    func entry() -> ConntrackEntry {
        var table = ConntrackTable(capacity: 1)
        let key = FlowKey(source: IPv4Address("10.0.1.2")!, destination: IPv4Address("10.96.0.10")!,
                          sourcePort: 55503, destinationPort: 53, protocolNumber: IPProtocol.udp)
        return table[try! table.insert(original: key, reply: key.reversed, now: 0, tag: 0, serial: 0).get()]
    }

    @Test("a query and its answer: 30 s, not ASSURED")
    func shortExchange() {
        var udp = entry()
        ConnectionTracker.trackUDP(&udp, now: 0, timeouts: ConntrackTimeouts())
        #expect(udp.secondsLeft(at: 0) == 30)
        ConnectionTracker.trackUDP(&udp, now: 1_000_000, timeouts: ConntrackTimeouts())
        udp.seenReply = true
        #expect(!udp.assured && udp.secondsLeft(at: 1_000_000) == 30)
    }

    @Test("a replied flow older than 2 s becomes an ASSURED stream with 120 s")
    func stream() {
        var udp = entry()
        ConnectionTracker.trackUDP(&udp, now: 0, timeouts: ConntrackTimeouts())
        udp.seenReply = true
        ConnectionTracker.trackUDP(&udp, now: 2_000_000_000, timeouts: ConntrackTimeouts())
        #expect(!udp.assured)
        ConnectionTracker.trackUDP(&udp, now: 2_000_000_001, timeouts: ConntrackTimeouts())
        #expect(udp.assured && udp.secondsLeft(at: 2_000_000_001) == 120)
    }
}
