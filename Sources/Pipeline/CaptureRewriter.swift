import Cluster
import Dataplane
import PacketIO
import PacketWire
import Synchronization

/// Set from a signal handler to stop a run between two packets; the run then flushes what it wrote.
public enum Interruption {
    public static let requested = Atomic<Bool>(false)
}

/// Counts of one run through a capture.
public struct RewriteCounts: Sendable, Equatable {
    public var packetsRead = 0
    public var packetsWritten = 0
    /// Replies the program generated (rejects), written right after the packet that caused them.
    public var generated = 0
    public var dropped = 0
    /// Frames left to the other shards of a `--shard` run (read, neither processed nor written).
    public var otherShards = 0
    /// The run stopped early because `Interruption.requested` was set.
    public var interrupted = false
    /// Cluster changes applied during the run, in order.
    public var changes: [ClusterChange] = []

    public init(packetsRead: Int = 0, packetsWritten: Int = 0, generated: Int = 0, dropped: Int = 0,
                interrupted: Bool = false)
    {
        self.packetsRead = packetsRead
        self.packetsWritten = packetsWritten
        self.generated = generated
        self.dropped = dropped
        self.interrupted = interrupted
    }
}

/// A new cluster state to apply at a capture time (`--apply TIME=FILE`).
public struct ScheduledChange: Sendable {
    /// When the change happens: nanoseconds since the Unix epoch, or after the capture's first packet.
    public enum Time: Sendable {
        case absolute(Int64)
        case afterFirstPacket(Int64)
    }

    public var time: Time
    public var table: ServiceTable
    /// Where the state came from, for the report.
    public var source: String

    public init(time: Time, table: ServiceTable, source: String) {
        self.time = time
        self.table = table
        self.source = source
    }
}

/// One shard of a run split by connection (`--shard K/N`): only the frames `sharding` puts in shard `index` of
/// `count` are processed and written.
public struct ShardSelection: Sendable {
    public let index: Int
    public let count: Int
    public let sharding: FlowSharding

    public init(index: Int, count: Int, sharding: FlowSharding) {
        self.index = index
        self.count = count
        self.sharding = sharding
    }
}

/// A capture that could not be read to its end: the error, and what was done before it.
public struct PartialRewrite: Error {
    public let error: CaptureError
    public let counts: RewriteCounts
}

/// Runs every frame of a capture through the service program and writes what leaves it:
/// source, program, sink, one packet at a time, with one reusable frame buffer.
public enum CaptureRewriter {
    /// `progress` is called every 65536 packets (a mask of the packet count).
    static let progressInterval = 0xFFFF

    /// Processes `reader` to its end. Passed and rewritten frames go to `writer` (if any) in input order;
    /// a generated reply follows the frame that caused it; dropped frames are counted, not written.
    /// On a damaged capture, frames before the damage are written and flushed, then `PartialRewrite` is thrown.
    /// With a `shard`, frames of other shards only move the program's clock, as they would in a single run.
    /// `progress` is called with the counts so far every 65536 packets.
    public static func run<Sink: FrameSink>(reader: PcapReader, writer: Sink?, program: inout ServiceLoadBalancer,
                                            changes: [ScheduledChange] = [], shard: ShardSelection? = nil,
                                            progress: ((RewriteCounts) -> Void)? = nil) throws -> RewriteCounts
    {
        var counts = RewriteCounts()
        var pending = changes[...]
        var firstTimestamp: Int64?
        var buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(Int(reader.snapLength), 65536),
                                                            alignment: 16)
        let generated = UnsafeMutableRawBufferPointer.allocate(byteCount: XDPContext.generatedCapacity, alignment: 16)
        defer {
            buffer.deallocate()
            generated.deallocate()
        }
        while !Interruption.requested.load(ordering: .relaxed) {
            let frame: CapturedFrame
            do {
                guard let next = try reader.next() else { break }
                frame = next
            } catch {
                if Interruption.requested.load(ordering: .relaxed) { break }  // a read cut short by the signal
                try writer?.flush()
                throw PartialRewrite(error: error, counts: counts)
            }
            counts.packetsRead += 1
            if counts.packetsRead & Self.progressInterval == 0 { progress?(counts) }
            let start = firstTimestamp ?? frame.timestamp
            if firstTimestamp == nil {
                firstTimestamp = start
                pending = pending.sorted {
                    $0.time.nanoseconds(firstPacket: start) < $1.time.nanoseconds(firstPacket: start)
                }[...]
            }
            while let next = pending.first, next.time.nanoseconds(firstPacket: start) <= frame.timestamp {
                var change = program.apply(next.table)
                change.source = next.source
                counts.changes.append(change)
                pending = pending.dropFirst()
            }
            if frame.bytes.count > buffer.count {
                buffer.deallocate()
                buffer = .allocate(byteCount: frame.bytes.count, alignment: 16)
            }
            let data = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<frame.bytes.count])
            data.copyMemory(from: frame.bytes)
            if let shard, shard.sharding.shard(of: data, wireLength: frame.wireLength, linkType: program.linkType,
                                                count: shard.count) != shard.index
            {
                program.advanceClock(to: frame.timestamp)
                counts.otherShards += 1
                continue
            }
            var context = XDPContext(data: data, wireLength: frame.wireLength, timestamp: frame.timestamp,
                                     generated: generated)
            switch program.run(&context) {
            case .pass, .redirect:
                writer?.write(UnsafeRawBufferPointer(data), wireLength: frame.wireLength, timestamp: frame.timestamp)
                counts.packetsWritten += 1
            case .tx:
                writer?.write(UnsafeRawBufferPointer(data), wireLength: frame.wireLength, timestamp: frame.timestamp)
                let reply = UnsafeRawBufferPointer(rebasing: generated[0..<context.generatedLength])
                writer?.write(reply, wireLength: reply.count, timestamp: frame.timestamp)
                counts.packetsWritten += 2
                counts.generated += 1
            case .drop, .aborted:
                counts.dropped += 1
            }
        }
        counts.interrupted = Interruption.requested.load(ordering: .relaxed)
        try writer?.close()
        return counts
    }

    /// Reads a capture once to learn which backend answered each connection (see `ObservedBackends`).
    /// A damaged record ends the observation quietly: the rewrite pass reports it, after writing what precedes it.
    public static func observeBackends(path: String, tables: [ServiceTable], udpTimeoutSeconds: Int64)
        throws(CaptureError) -> ObservedBackends
    {
        let reader = try PcapReader(path: path)
        let linkType = LinkType(dlt: reader.datalink)
        var observed = ObservedBackends(tables: tables, udpTimeoutSeconds: udpTimeoutSeconds)
        var buffer = [UInt8](repeating: 0, count: 256)
        while !Interruption.requested.load(ordering: .relaxed) {
            guard let frame = try? reader.next() else { break }
            // Only headers are read: a copy of the first bytes is enough and keeps the capture's data const.
            let count = min(frame.bytes.count, buffer.count)
            buffer.withUnsafeMutableBytes { copy in
                copy.copyMemory(from: UnsafeRawBufferPointer(rebasing: frame.bytes[0..<count]))
                observed.observe(frame: UnsafeMutableRawBufferPointer(rebasing: copy[0..<count]), linkType: linkType,
                                 wireLength: frame.wireLength, timestamp: frame.timestamp)
            }
        }
        return observed
    }
}

extension ScheduledChange.Time {
    /// The time on the capture's clock, given the first packet's.
    func nanoseconds(firstPacket: Int64) -> Int64 {
        switch self {
        case .absolute(let time): time
        case .afterFirstPacket(let offset): firstPacket + offset
        }
    }
}
