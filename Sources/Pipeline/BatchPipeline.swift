import Dispatch
import PacketIO

/// Reads a capture into `FrameBatch`es and passes each through two steps: `work` (the programs), then `finish`
/// (writing), in input order. While `overlaps()` says so (asked for each batch), `work` runs on another thread
/// while this one writes the batch before it and reads the batch after it, so that reading and writing overlap
/// the workers; two batches take turns. Otherwise the steps follow one another on this thread. The output is
/// the same either way.
struct BatchPipeline {
    let reader: PcapReader
    let workers: Int
    let overlaps: () -> Bool
    /// Called with the number of packets read each time it passes a multiple of `progressStep`.
    let progress: ((Int) -> Void)?
    static let progressStep = 65536

    /// Runs the capture to its end, an interruption, or damage, which is returned after every frame before it
    /// went through both steps; with the number of packets read.
    func run(work: @escaping (FrameBatch) -> Void, finish: (FrameBatch) -> Void)
        -> (packetsRead: Int, damage: CaptureError?)
    {
        var packetsRead = 0
        var damage: CaptureError?
        var ready = FrameBatch(workers: workers)
        var spare = FrameBatch(workers: workers)
        var processed: FrameBatch?
        fill(ready, packetsRead: &packetsRead, damage: &damage)
        while ready.count > 0 {
            let group = DispatchGroup()
            nonisolated(unsafe) let batch = ready
            nonisolated(unsafe) let work = work
            if overlaps() {
                DispatchQueue.global().async(group: group) { work(batch) }
            } else {
                work(batch)
            }
            if let processed { finish(processed) }
            if damage == nil { fill(spare, packetsRead: &packetsRead, damage: &damage) } else { spare.removeAll() }
            group.wait()
            processed = ready
            swap(&ready, &spare)
        }
        if let processed { finish(processed) }
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
