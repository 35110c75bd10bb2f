import Dataplane

/// One program with its own maps (conntrack, affinity, selector state) over one worker's connections: it runs
/// the batch frames that are its own, moves its clock over the others as they would, and applies the run's
/// cluster changes when the capture's time reaches them. Workers share nothing but the batch, whose frames
/// each one rewrites only where they are its own.
struct ShardWorker {
    var program: ServiceLoadBalancer
    private var pending: ArraySlice<ScheduledChange>
    private var firstTimestamp: Int64?
    /// The changes applied, in order, with this worker's counts.
    private(set) var applied: [ClusterChange] = []
    private let generated: UnsafeMutableRawBufferPointer

    init(program: ServiceLoadBalancer, changes: [ScheduledChange]) {
        self.program = program
        pending = changes[...]
        generated = .allocate(byteCount: XDPContext.generatedCapacity, alignment: 16)
    }

    /// Gives back the worker's reply buffer.
    func release() { generated.deallocate() }

    /// Runs this worker's frames of `batch` (those `batch.workers` gives to `index`), with the verdicts and
    /// replies in the batch's lane `index`.
    mutating func process(_ batch: FrameBatch, as index: Int) {
        let lane = batch.lanes.baseAddress! + index
        for frameIndex in 0..<batch.count {
            let frame = batch.frames[frameIndex]
            if !pending.isEmpty { applyChanges(upTo: frame.timestamp) }
            guard batch.workers[frameIndex] == index else {
                program.advanceClock(to: frame.timestamp)
                continue
            }
            var context = XDPContext(data: batch.bytes(of: frameIndex), wireLength: frame.wireLength,
                                     timestamp: frame.timestamp, generated: generated)
            let verdict = program.run(&context)
            lane.pointee.verdicts[frameIndex] = verdict
            if verdict != .pass && verdict != .redirect { lane.pointee.unpassed += 1 }
            if verdict == .tx {
                let start = lane.pointee.replyBytes.count
                lane.pointee.replyBytes.append(
                    contentsOf: UnsafeRawBufferPointer(rebasing: generated[0..<context.generatedLength]))
                lane.pointee.replies.append(start..<lane.pointee.replyBytes.count)
            }
        }
    }

    /// Applies the scheduled changes due at `timestamp` (times after the first packet count from the first frame).
    private mutating func applyChanges(upTo timestamp: Int64) {
        let start = firstTimestamp ?? timestamp
        if firstTimestamp == nil {
            firstTimestamp = start
            pending = pending.sorted {
                $0.time.nanoseconds(firstPacket: start) < $1.time.nanoseconds(firstPacket: start)
            }[...]
        }
        while let next = pending.first, next.time.nanoseconds(firstPacket: start) <= timestamp {
            var change = program.apply(next.table)
            change.source = next.source
            applied.append(change)
            pending = pending.dropFirst()
        }
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
