import Foundation
import PacketIO

/// Sees the capture as a `BatchPipeline` reads it, on the reading thread.
protocol ReadingObserver {
    /// `batch` has just been read, after `framesBefore` frames; no worker has seen it yet.
    func read(_ batch: FrameBatch, framesBefore: Int)
    /// The reading waits for the workers to move on (true), or goes on (false).
    func readingHeld(_ held: Bool)
    /// Every worker has worked `batch`, the oldest batch read and not worked before; it is to be finished.
    func worked(_ batch: FrameBatch)
    /// Nothing more will be read.
    func readingEnded()
}

/// Reads a capture into `FrameBatch`es and passes each through three steps, in input order: `prepare`, in one
/// part per worker, each part taken by whichever worker is free first, then `work` once per worker (each worker
/// on a thread of its own), then `finish` (writing) on this thread. When `overlaps`, up to `depth` batches are
/// in flight: the workers take the batches as they are read, each at its own pace, while this thread reads ahead
/// and finishes behind them; no step waits for another but for the batch it needs, so a worker briefly off its
/// core catches up instead of holding up the others. Otherwise every batch is finished before the next is read.
/// The output is the same either way.
struct BatchPipeline {
    let reader: PcapReader
    let workers: Int
    let overlaps: Bool
    /// Called with the number of packets read each time it passes a multiple of `progressStep`.
    let progress: ((Int) -> Void)?
    var observer: ReadingObserver?
    static let progressStep = 65536
    /// Batches in flight at most.
    static let depth = 8

    /// Runs the capture to its end, an interruption, or damage, which is returned after every frame before it
    /// went through the steps; with the number of packets read. On the workers' threads, `prepare(batch, part)`
    /// runs once for each of `workers` parts of the batch's frames (disjoint, covering it), on whichever worker
    /// takes the part (preparing comes first, so that no worker waits for a part another has yet to start);
    /// once every part of the batch is prepared, `work(batch, w)` runs on worker `w`'s thread, beside the other
    /// workers' runs.
    func run(prepare: @escaping (FrameBatch, Range<Int>) -> Void,
             work: @escaping (FrameBatch, Int) -> Void, finish: (FrameBatch) -> Void)
        -> (packetsRead: Int, damage: CaptureError?)
    {
        nonisolated(unsafe) let ring = (0..<Self.depth).map { _ in FrameBatch(workers: workers) }
        let handoffs = Handoffs(workers: workers, depth: Self.depth)
        nonisolated(unsafe) let (prepare, work) = (prepare, work)
        for worker in 0..<workers {
            Thread.detachNewThread { [workers] in
                while let step = handoffs.nextStep(of: worker) {
                    let batch = ring[step.sequence % Self.depth]
                    switch step.kind {
                    case .prepare(let part):
                        prepare(batch, batch.count * part / workers..<batch.count * (part + 1) / workers)
                    case .work:
                        work(batch, worker)
                    }
                    handoffs.done(step, by: worker)
                }
            }
        }
        var packetsRead = 0
        var damage: CaptureError?
        var read = 0
        var finished = 0
        var reading = true
        func finishNext() {
            if !handoffs.isWorked(finished) {
                // While reading, the wait holds the reading up.
                if reading { observer?.readingHeld(true) }
                handoffs.waitUntilWorked(finished)
                if reading { observer?.readingHeld(false) }
            }
            observer?.worked(ring[finished % Self.depth])
            finish(ring[finished % Self.depth])
            finished += 1
        }
        while true {
            while finished < read, !overlaps || read - finished == Self.depth || handoffs.isWorked(finished) {
                finishNext()
            }
            guard damage == nil else { break }
            let batch = ring[read % Self.depth]
            fill(batch, packetsRead: &packetsRead, damage: &damage)
            guard batch.count > 0 else { break }
            observer?.read(batch, framesBefore: packetsRead - batch.count)
            read += 1
            handoffs.publish(read)
        }
        reading = false
        observer?.readingEnded()
        handoffs.close()
        while finished < read { finishNext() }
        handoffs.waitForExits()
        return (packetsRead, damage)
    }

    /// Reads frames into `batch` until it is full, the capture ends, the run is interrupted, or the capture
    /// is damaged (`damage`): whole records into the batch's memory when the reader can, else frame by frame.
    private func fill(_ batch: FrameBatch, packetsRead: inout Int, damage: inout CaptureError?) {
        batch.removeAll()
        do {
            while !batch.isFull, !Interruption.requested.load(ordering: .relaxed) {
                var read = batch.readRecords(from: reader)
                if read == 0 {
                    guard let frame = try reader.next() else { break }
                    batch.append(frame)
                    read = 1
                }
                if (packetsRead + read) / Self.progressStep != packetsRead / Self.progressStep {
                    progress?(packetsRead + read)
                }
                packetsRead += read
            }
        } catch {
            // A read cut short by the signal ends the run; anything else is damage.
            if !Interruption.requested.load(ordering: .relaxed) { damage = error }
        }
    }
}

/// What the pipeline's threads tell one another, under one lock: how many batches are read, which parts of them
/// are taken and prepared, how far each worker has worked them, and whether the reading is over. A few hand-offs
/// per batch, none per frame.
private final class Handoffs: @unchecked Sendable {
    /// A worker's next step: preparing a part of a batch, or its work on a batch every part of which is prepared.
    struct Step {
        enum Kind { case prepare(part: Int), work }
        let kind: Kind
        let sequence: Int
    }

    private let condition = NSCondition()
    private let workers: Int
    private var read = 0
    private var closed = false
    /// Parts taken to prepare, counted over the batches in order (`workers` parts a batch).
    private var partsTaken = 0
    /// Parts prepared of the batch in each slot of the ring of `depth` batches.
    private var partsPrepared: [Int]
    /// Batches each worker has worked.
    private var worked: [Int]
    private var running: Int

    init(workers: Int, depth: Int) {
        self.workers = workers
        partsPrepared = Array(repeating: 0, count: depth)
        worked = Array(repeating: 0, count: workers)
        running = workers
    }

    private func locked<T>(_ body: () -> T) -> T {
        condition.lock()
        defer { condition.unlock() }
        return body()
    }

    /// Sets how many batches are read, and wakes the workers. (A batch's slot is reused once every worker has
    /// worked the batch before it there.)
    func publish(_ count: Int) {
        locked {
            for sequence in read..<count { partsPrepared[sequence % partsPrepared.count] = 0 }
            read = count
        }
        condition.broadcast()
    }

    /// No more batches will be read.
    func close() {
        locked { closed = true }
        condition.broadcast()
    }

    /// Waits for `worker`'s next step: the next part to prepare, if any, first; nil once the reading is over and
    /// the worker has worked every batch read (its thread then leaves).
    func nextStep(of worker: Int) -> Step? {
        locked {
            while true {
                if partsTaken < read * workers {
                    defer { partsTaken += 1 }
                    return Step(kind: .prepare(part: partsTaken % workers), sequence: partsTaken / workers)
                }
                let next = worked[worker]
                if next < read, partsPrepared[next % partsPrepared.count] == workers {
                    return Step(kind: .work, sequence: next)
                }
                if closed, next == read {
                    running -= 1
                    condition.broadcast()
                    return nil
                }
                condition.wait()
            }
        }
    }

    /// `worker` has taken `step`.
    func done(_ step: Step, by worker: Int) {
        locked {
            switch step.kind {
            case .prepare: partsPrepared[step.sequence % partsPrepared.count] += 1
            case .work: worked[worker] = step.sequence + 1
            }
        }
        condition.broadcast()
    }

    /// Whether every worker has worked batch `sequence`.
    func isWorked(_ sequence: Int) -> Bool {
        locked { everyWorkerWorked(sequence) }
    }

    func waitUntilWorked(_ sequence: Int) {
        locked {
            while !everyWorkerWorked(sequence) { condition.wait() }
        }
    }

    private func everyWorkerWorked(_ sequence: Int) -> Bool { worked.allSatisfy { $0 > sequence } }

    /// Waits until every worker's thread has left.
    func waitForExits() {
        locked {
            while running > 0 { condition.wait() }
        }
    }
}
