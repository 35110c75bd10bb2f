import Cluster
import Dataplane
import Dispatch
import Foundation
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

/// A capture that could not be read to its end: the error, and what was done before it.
public struct PartialRewrite: Error {
    public let error: CaptureError
    public let counts: RewriteCounts
}

/// Runs every frame of a capture through the service program and writes what leaves it, in batches: the reader
/// fills a `FrameBatch`, the workers (one program per connection shard, in parallel when there are several)
/// rewrite their frames in place, and the batch is written in input order.
public enum CaptureRewriter {
    /// Processes `reader` to its end with one program per worker of `partition` (one without a partition; with
    /// several, they run in parallel, beside the reading and writing). Passed and rewritten frames go to
    /// `writer` (if any) in input order; a generated reply follows the frame that caused it; dropped frames are
    /// counted, not written. Frames of other shards only move the programs' clocks, as they would in a single
    /// run. On a damaged capture, frames before the damage are written and flushed, then `PartialRewrite` is
    /// thrown. `progress` is called with the number of packets read each time it passes a multiple of 65536.
    public static func run<Sink: FrameSink>(reader: PcapReader, writer: Sink?, programs: inout [ServiceLoadBalancer],
                                            changes: [ScheduledChange] = [], partition: ConnectionPartition? = nil,
                                            progress: ((Int) -> Void)? = nil) throws -> RewriteCounts
    {
        precondition(programs.count == partition?.workers ?? 1, "one program per worker")
        nonisolated(unsafe) let workers = UnsafeMutableBufferPointer<ShardWorker>.allocate(capacity: programs.count)
        _ = workers.initialize(from: programs.map { ShardWorker(program: $0, changes: changes) })
        defer {
            programs = workers.map(\.program)
            workers.forEach { $0.release() }
            workers.deinitialize().deallocate()
        }
        let linkType = programs[0].linkType
        // Frames read in blocks keep their record headers, which a pcap writer of the same precision takes as
        // they are.
        let records = (writer as? PcapWriter).flatMap { $0.precision == reader.filePrecision ? $0 : nil }
        var counts = RewriteCounts()
        // Reading and writing overlap the programs when a core is free for them.
        let overlaps = ProcessInfo.processInfo.activeProcessorCount > 1
        let scanner = programs[0].observed.map { ReplyScanner(replies: $0, linkType: linkType) }
        let pipeline = BatchPipeline(reader: reader, workers: workers.count, overlaps: overlaps, progress: progress,
                                     observer: scanner)
        let (packetsRead, damage) = pipeline.run { batch, part in
            if let partition { classify(part, of: batch, by: partition, linkType: linkType) }
        } work: { batch, index in
            workers[index].process(batch, as: index)
        } finish: { batch in
            write(batch, to: writer, records: records, keepsEveryFrame: partition?.keepsEveryFrame ?? true,
                  counts: &counts)
        }
        counts.packetsRead = packetsRead
        counts.changes = mergedChanges(workers)
        counts.interrupted = Interruption.requested.load(ordering: .relaxed)
        if let damage {
            try writer?.flush()
            throw PartialRewrite(error: damage, counts: counts)
        }
        try writer?.close()
        return counts
    }

    /// The same with one program.
    public static func run<Sink: FrameSink>(reader: PcapReader, writer: Sink?, program: inout ServiceLoadBalancer,
                                            changes: [ScheduledChange] = []) throws -> RewriteCounts
    {
        var programs = [program]
        defer { program = programs[0] }
        return try run(reader: reader, writer: writer, programs: &programs, changes: changes)
    }

    /// Gives each frame of `part` of the batch its worker.
    private static func classify(_ part: Range<Int>, of batch: FrameBatch, by partition: ConnectionPartition,
                                 linkType: LinkType)
    {
        for index in part {
            let wireLength = batch.frames[index].wireLength
            batch.workers[index] = partition.worker(of: batch.bytes(of: index), wireLength: wireLength,
                                                    linkType: linkType)
        }
    }

    /// Writes the batch's frames in input order with the replies they caused, and counts them. Passed frames
    /// that kept their record headers go out through `records` as runs of whole records: the whole batch at once
    /// when every frame was read in blocks, is kept (`keepsEveryFrame`: no frame is another shard's) and passed.
    private static func write<Sink: FrameSink>(_ batch: FrameBatch, to writer: Sink?, records: PcapWriter?,
                                               keepsEveryFrame: Bool, counts: inout RewriteCounts)
    {
        if let records, keepsEveryFrame, batch.copiedCount == 0, batch.lanes.allSatisfy({ $0.unpassed == 0 }) {
            records.writeRecords(batch.allRecords, count: batch.count)
            counts.packetsWritten += batch.count
            return
        }
        var replyCursors = [Int](repeating: 0, count: batch.lanes.count)
        var run: (bytes: Range<Int>, count: Int)?
        func writeRun() {
            if let pending = run { records?.writeRecords(batch.records(pending.bytes), count: pending.count) }
            run = nil
        }
        defer { writeRun() }
        for index in 0..<batch.count {
            let worker = batch.workers[index]
            guard worker != FrameBatch.otherShard else {
                counts.otherShards += 1
                continue
            }
            let frame = batch.frames[index]
            switch batch.lanes[worker].verdicts[index] {
            case .pass, .redirect:
                counts.packetsWritten += 1
                guard records != nil, frame.hasRecordHeader else {
                    writeRun()
                    writer?.write(UnsafeRawBufferPointer(batch.bytes(of: index)), wireLength: frame.wireLength,
                                  timestamp: frame.timestamp)
                    continue
                }
                let record = frame.offset - PcapFormat.recordHeaderLength..<frame.offset + frame.length
                if let pending = run, pending.bytes.upperBound == record.lowerBound {
                    run = (pending.bytes.lowerBound..<record.upperBound, pending.count + 1)
                } else {
                    writeRun()
                    run = (record, 1)
                }
            case .tx:
                writeRun()
                writer?.write(UnsafeRawBufferPointer(batch.bytes(of: index)), wireLength: frame.wireLength,
                              timestamp: frame.timestamp)
                let reply = batch.lanes[worker].replies[replyCursors[worker]]
                replyCursors[worker] += 1
                batch.lanes[worker].replyBytes[reply].withUnsafeBytes {
                    writer?.write($0, wireLength: $0.count, timestamp: frame.timestamp)
                }
                counts.packetsWritten += 2
                counts.generated += 1
            case .drop, .aborted:
                counts.dropped += 1
            }
        }
    }

    /// The changes as one run applied them: the same states at the same times, with every worker's counts.
    private static func mergedChanges(_ workers: UnsafeMutableBufferPointer<ShardWorker>) -> [ClusterChange] {
        var changes = workers[0].applied
        for worker in workers.dropFirst() {
            for (position, change) in worker.applied.enumerated() {
                changes[position].udpEntriesDeleted += change.udpEntriesDeleted
                changes[position].tcpEntriesOrphaned += change.tcpEntriesOrphaned
            }
        }
        return changes
    }

    /// The backends the replies of the capture at `path` show (see `CaptureReplies`), to be recorded as a run reads
    /// the capture; a look-ahead reading, when the programs need it, reads the capture again on a thread of its
    /// own. A damaged record ends that reading quietly: the run reports it, after writing what precedes it.
    public static func followReplies(path: String, tables: [ServiceTable], udpTimeoutSeconds: Int64)
        throws(CaptureError) -> CaptureReplies
    {
        nonisolated(unsafe) let reader = try PcapReader(path: path)
        let linkType = LinkType(dlt: reader.datalink)
        return CaptureReplies(tables: tables, udpTimeoutSeconds: udpTimeoutSeconds) { replies in
            Thread.detachNewThread { readAhead(reader, into: replies, linkType: linkType) }
        }
    }

    /// Reads the capture from its start, while the programs waiting need it, and records the sightings of the
    /// frames past those recorded, to the end (or until the run has read it).
    private static func readAhead(_ reader: PcapReader, into replies: CaptureReplies, linkType: LinkType) {
        var pass = SightingPass(replies: replies, linkType: linkType)
        var number = 0
        while replies.awaitLookAheadNeed() {
            for _ in 0..<Self.sightingChunk {
                guard !Interruption.requested.load(ordering: .relaxed), let frame = try? reader.next() else {
                    pass.record(throughFrame: number)
                    replies.finish()
                    return
                }
                pass.scan(frame.bytes, number: number, wireLength: frame.wireLength, timestamp: frame.timestamp)
                number += 1
            }
            pass.record(throughFrame: number)
        }
    }

    /// Frames read ahead between two hand-overs of their sightings to the programs.
    static let sightingChunk = 1024
}

/// Records the sightings of each batch the pipeline reads in the capture's replies, tells them when the reading
/// is held up and when it ends, and lets them forget what lies behind the batches every program has worked.
private final class ReplyScanner: ReadingObserver {
    private var pass: SightingPass
    /// The capture clock through each batch read and not yet worked, in order.
    private var clocks: [Int64] = []

    init(replies: CaptureReplies, linkType: LinkType) {
        pass = SightingPass(replies: replies, linkType: linkType)
    }

    func read(_ batch: FrameBatch, framesBefore: Int) {
        pass.scan(batch, framesBefore: framesBefore)
        pass.record(throughFrame: framesBefore + batch.count)
        clocks.append(pass.clock.time)
    }

    func worked(_ batch: FrameBatch) {
        // Each program's clock has passed the batch's frames, its own or not.
        pass.replies.forget(before: clocks.removeFirst())
    }

    func readingHeld(_ held: Bool) { pass.replies.setReadingHeld(held) }

    func readingEnded() { pass.replies.finish() }
}
