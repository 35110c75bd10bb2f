import Cluster
@testable import Dataplane
import Foundation
import PacketWire
import TestSupport
import Testing

/// Records in `observed` the sightings of `frames` (with their timestamps), counted on from `first`, for a pass
/// over them with its own table of reported pairs and clock; returns them.
@discardableResult
func recordSightings(_ frames: [(bytes: [UInt8], time: Int64)], first: Int = 0, in observed: CaptureReplies,
                     reported: inout ReportedPairs, clock: inout CaptureClock) -> [ObservedBackends.Sighting]
{
    var sightings: [ObservedBackends.Sighting] = []
    let decoder = observed.decoder
    for (offset, frame) in frames.enumerated() {
        clock.advance(to: frame.time)
        let (sighting, _) = withFrame(frame.bytes) { bytes in
            decoder.candidateOffset(in: bytes, linkType: .ethernet, clock: clock, reported: reported).flatMap {
                decoder.sighting(in: bytes, networkOffset: $0, frame: first + offset, wireLength: bytes.count,
                                 timestamp: frame.time, clock: clock, reported: &reported)
            }
        }
        if let sighting { sightings.append(sighting) }
    }
    observed.record(sightings, throughFrame: first + frames.count, clock: clock.time)
    return sightings
}

@Suite("Backends observed in the capture")
struct ObservedBackendsTests {
    /// A program (of `configuration`) that has seen `replies` read from the capture (each a pod answering a client
    /// port at a time).
    func harness(replies: [(pod: String, clientPort: UInt16, time: Int64)],
                 configuration: LoadBalancerConfiguration = LoadBalancerConfiguration()) throws -> Harness
    {
        var harness = try Harness(seed: 99)
        let observed = CaptureReplies(tables: [harness.program.table], udpTimeoutSeconds: 30)
        var (reported, clock) = (ReportedPairs(), observed.decoder.captureClock())
        recordSightings(replies.map { (synAck(from: $0.pod, to: $0.clientPort), harness.now + $0.time) },
                        in: observed, reported: &reported, clock: &clock)
        observed.finish()
        harness.program = ServiceLoadBalancer(table: harness.program.table, linkType: .ethernet,
                                              configuration: configuration, observed: observed)
        return harness
    }

    func synAck(from pod: String, to clientPort: UInt16) -> [UInt8] {
        var synAck = PacketBuilder(source: pod, destination: "10.0.1.2", sourcePort: 9376,
                                   destinationPort: clientPort)
        synAck.flags = [.syn, .ack]
        return synAck.ethernetFrame()
    }

    @Test("a connection goes to the pod whose reply the capture holds")
    func followsReplies() throws {
        var harness = try harness(replies: [("10.244.3.11", 40000, 5_000_000), ("10.244.2.11", 40001, 6_000_000)])
        #expect(harness.run(client(40000).ethernetFrame()).1[14 + 18] == 3)
        #expect(harness.run(client(40001).ethernetFrame()).1[14 + 18] == 2)
        #expect(harness.program.stats.connectionsFromCapture == 2)
    }

    @Test("a program asking before the reply is read waits for it, and gives up only when the capture is read")
    func waitsForTheReader() throws {
        var harness = try Harness(seed: 99)
        let observed = CaptureReplies(tables: [harness.program.table], udpTimeoutSeconds: 30)
        harness.program = ServiceLoadBalancer(table: harness.program.table, linkType: .ethernet,
                                              configuration: LoadBalancerConfiguration(), observed: observed)
        let unrelated = PacketBuilder(source: "10.244.1.11", destination: "10.0.1.9", sourcePort: 9376,
                                      destinationPort: 50000).ethernetFrame()
        let now = harness.now
        // The reader records an unrelated reply, then, later, the one that decides; then the capture ends.
        Thread.detachNewThread { [self] in
            var (reported, clock) = (ReportedPairs(), observed.decoder.captureClock())
            recordSightings([(unrelated, now)], in: observed, reported: &reported, clock: &clock)
            Thread.sleep(forTimeInterval: 0.2)
            recordSightings([(synAck(from: "10.244.3.11", to: 40000), now + 50_000_000)], first: 1, in: observed,
                            reported: &reported, clock: &clock)
            Thread.sleep(forTimeInterval: 0.2)
            observed.finish()
        }
        let started = ContinuousClock.now
        #expect(harness.run(client(40000).ethernetFrame()).1[14 + 18] == 3, "the reply read late decides")
        #expect(ContinuousClock.now - started >= .milliseconds(150))
        #expect(harness.run(client(40001).ethernetFrame()).0 == .pass, "undecided once the capture is read")
        #expect(harness.program.stats.connectionsFromCapture == 1)
    }

    @Test("a reused client port follows the reply that comes after its SYN")
    func portReuse() throws {
        var harness = try harness(replies: [("10.244.1.11", 40000, 1_500_000), ("10.244.3.11", 40000, 60_000_000)])
        #expect(harness.run(client(40000).ethernetFrame()).1[14 + 18] == 1)
        harness.now += 50_000_000
        var rst = client(40000)  // the client aborts; its next SYN from the same port opens a new connection
        rst.flags = [.rst]
        _ = harness.run(rst.ethernetFrame())
        var second = client(40000)
        second.sequence = 77
        #expect(harness.run(second.ethernetFrame()).1[14 + 18] == 3)
    }

    @Test("only connections the table takes count as opened on the backend the capture shows")
    func countsConnectionsMade() throws {
        var configuration = LoadBalancerConfiguration()
        configuration.conntrackMax = 1
        var harness = try harness(replies: [("10.244.3.11", 40000, 1_500_000), ("10.244.2.11", 40001, 5_000_000)],
                                  configuration: configuration)
        _ = harness.run(client(40000).ethernetFrame())
        var synAck = PacketBuilder(source: "10.244.3.11", destination: "10.0.1.2", sourcePort: 9376,
                                   destinationPort: 40000)
        (synAck.flags, synAck.sequence, synAck.acknowledgement) = ([.syn, .ack], 5000, 1001)
        _ = harness.run(synAck.ethernetFrame())
        var ack = client(40000)  // established and ASSURED: early drop cannot make room
        (ack.flags, ack.sequence, ack.acknowledgement) = ([.ack], 1001, 5001)
        _ = harness.run(ack.ethernetFrame())
        #expect(harness.run(client(40001).ethernetFrame()).0 == .drop, "table full")
        #expect(harness.program.stats.count(dropped: .tableFull) == 1)
        #expect(harness.program.stats.newConnections == 1 && harness.program.stats.connectionsFromCapture == 1)
    }

    @Test("replies from an address that is no endpoint are not observations")
    func ignoresStrangers() throws {
        var harness = try harness(replies: [("10.244.9.99", 40000, 5_000_000)])
        _ = harness.run(client(40000).ethernetFrame())
        #expect(harness.program.stats.connectionsFromCapture == 0)
        #expect(harness.program.observed?.count == 0)
    }

    @Test("a reply counts within a horizon of the program's clock; a pair silent for longer starts anew")
    func horizon() throws {
        let second: Int64 = 1_000_000_000
        var harness = try harness(replies: [("10.244.3.11", 40000, 119 * second), ("10.244.3.11", 40001, 121 * second)])
        #expect(harness.run(client(40000).ethernetFrame()).1[14 + 18] == 3)
        _ = harness.run(client(40001).ethernetFrame())
        #expect(harness.program.stats.connectionsFromCapture == 1, "the second reply is past the horizon")

        // A pair's segments (no SYN/ACK): gaps shorter than a period (a minute) keep one observation going, a gap of
        // two periods starts a second.
        let observed = CaptureReplies(tables: [harness.program.table], udpTimeoutSeconds: 30)
        var segment = PacketBuilder(source: "10.244.2.11", destination: "10.0.1.2", sourcePort: 9376,
                                    destinationPort: 40002)
        segment.flags = [.ack]
        let times: [Int64] = [0, 50, 100, 150, 200, 400, 430].map { harness.now + $0 * second }
        var (reported, clock) = (ReportedPairs(), observed.decoder.captureClock())
        recordSightings(times.map { (segment.ethernetFrame(), $0) }, in: observed, reported: &reported, clock: &clock)
        observed.finish()
        #expect(observed.count == 2, "a second observation at 400 s")
        harness.program = ServiceLoadBalancer(table: harness.program.table, linkType: .ethernet,
                                              configuration: LoadBalancerConfiguration(), observed: observed)
        harness.now += 300 * second
        #expect(harness.run(client(40002).ethernetFrame()).1[14 + 18] == 2, "the pair's replies from 400 s")
    }

    @Test("passing over pairs' later segments, and forgetting what lies behind the programs, change no answer")
    func passingOverAndForgettingChangeNothing() throws {
        let table = try Harness().program.table
        let web = try #require(table.entries.first { $0.frontend.port == 80 && !$0.backends.isEmpty })
        let dns = try #require(table.entries.first { $0.frontend.port == 53 })
        let pods = ["10.244.1.11", "10.244.2.11", "10.244.3.11", "10.244.9.99"]  // the last is no endpoint
        let flagChoices: [TCPFlags] = [[.ack], [.ack], [.ack, .psh], [.syn, .ack], [.fin, .ack], [.rst], [.syn]]
        var random = SeededGenerator(seed: 7)
        let tenth: Int64 = 100_000_000
        // Most replies go to a few ports that take turns to be busy (each for about 20 s, then silent for about the
        // horizon); the others to many ports that seldom recur (more than the table's slots).
        func client(_ number: Int) -> (address: String, port: UInt16) {
            Int.random(in: 0..<4, using: &random) > 0
                ? ("10.0.1.1", UInt16(40000 + (number / 50 + Int.random(in: 0..<4, using: &random)) % 28))
                : ("10.0.\(Int.random(in: 2...200, using: &random)).\(Int.random(in: 1...250, using: &random))",
                   UInt16.random(in: 32768...60999, using: &random))
        }
        let memo = CaptureReplies(tables: [table], udpTimeoutSeconds: 30)
        let everyFrame = CaptureReplies(tables: [table], udpTimeoutSeconds: 30)
        let horizon = ObservedBackends(tables: [table], udpTimeoutSeconds: 30).horizon
        var (reported, memoClock, everyClock) = (ReportedPairs(), memo.decoder.captureClock(),
                                                 everyFrame.decoder.captureClock())
        // The same observations, and those forgotten as soon as programs at the reading's clock allow it.
        var (every, eager) = (ObservedBackends(tables: [table], udpTimeoutSeconds: 30),
                              ObservedBackends(tables: [table], udpTimeoutSeconds: 30))
        var clients: [FlowKey] = []
        var (memoSightings, allSightings, decided, peak) = (0, 0, 0, 0)
        for number in 0..<20_000 {
            let (address, port) = client(number)
            let isTCP = Int.random(in: 0..<5, using: &random) > 0
            var reply = PacketBuilder(source: pods.randomElement(using: &random)!, destination: address,
                                      sourcePort: isTCP ? 9376 : 53, destinationPort: port)
            reply.protocolNumber = isTCP ? IPProtocol.tcp : IPProtocol.udp
            reply.flags = flagChoices.randomElement(using: &random)!
            var frame = reply.ethernetFrame()
            switch Int.random(in: 0..<50, using: &random) {
            case 0: frame.removeLast(Int.random(in: 1...frame.count, using: &random))  // cut short
            case 1: frame[Int.random(in: 14..<frame.count, using: &random)] ^= 0xFF  // damaged
            default: break
            }
            // A tenth of a second apart, up to two seconds out of order.
            let time = Int64(number) * tenth - Int64.random(in: 0..<20, using: &random) * tenth
            var fresh = ReportedPairs()
            let all = recordSightings([(frame, time)], first: number, in: everyFrame, reported: &fresh,
                                      clock: &everyClock)
            let memoized = recordSightings([(frame, time)], first: number, in: memo, reported: &reported,
                                           clock: &memoClock)
            (allSightings, memoSightings) = (allSightings + all.count, memoSightings + memoized.count)
            all.forEach { every.record($0) }
            memoized.forEach { eager.record($0) }
            eager.forget(before: memoClock.time)
            let endpoint = TransportEndpoint(address: IPv4Address(address)!, port: port,
                                             protocolNumber: reply.protocolNumber)
            // Passing over a pair's segments in a period leaves its last sighting earlier in the period.
            let kept = keeps(eager.observations[endpoint] ?? [], of: every.observations[endpoint] ?? [],
                             since: memoClock.time - horizon / 2)
            #expect(kept, "frame \(number): an observation that can still count is forgotten, or one is new")
            clients.append(FlowKey(source: IPv4Address(address)!, destination: IPv4Address(10, 96, 0, 1),
                                   sourcePort: port, destinationPort: 80, protocolNumber: reply.protocolNumber))
            // A program a horizon behind the reading (which decides its answers), asking about a client of the
            // replies around its clock, for packets at its clock and out of order; then the replies forget.
            let programClock = memoClock.time - horizon - 10 * tenth
            if number % 5 == 0 {
                let flow = clients[Int.random(in: max(0, number - 2000)...number, using: &random)]
                let entry = flow.protocolNumber == IPProtocol.tcp ? web : dns
                let candidates = Array(entry.backends.indices.shuffled(using: &random).prefix(2))
                for time in [programClock, programClock - Int64.random(in: 0..<2000, using: &random) * tenth] {
                    let expected = everyFrame.choice(for: flow, at: time, clock: programClock, entry: entry,
                                                     among: candidates)
                    #expect(memo.choice(for: flow, at: time, clock: programClock, entry: entry, among: candidates)
                        == expected, "frame \(number)")
                    if expected != nil { decided += 1 }
                }
            }
            memo.forget(before: programClock)
            peak = max(peak, eager.count)
        }
        #expect(memoSightings < allSightings * 3 / 4, "\(memoSightings) of \(allSightings) sightings")
        #expect(decided > 1000, "\(decided) answers from the replies")
        #expect(peak < everyFrame.count / 3, "\(peak) observations held at most, of \(everyFrame.count)")
    }

    /// Whether `kept` is `all` (in order) less some observations, none of them last seen since `limit`.
    func keeps(_ kept: [ObservedBackends.Observation], of all: [ObservedBackends.Observation],
               since limit: Int64) -> Bool
    {
        var rest = kept[...]
        for observation in all {
            if let next = rest.first, next.time == observation.time, next.recorded == observation.recorded,
               next.backend == observation.backend
            {
                rest.removeFirst()
            } else if observation.lastSeen >= limit {
                return false
            }
        }
        return rest.isEmpty
    }
}
