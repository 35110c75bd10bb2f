import Dataplane
import PacketIO

/// Frames read from a capture into one arena, where the workers rewrite them in place and from where they are
/// written in input order, with each worker's verdicts in a lane of its own. A run reuses its batches: nothing
/// is allocated per frame.
final class FrameBatch {
    /// A batch ends once this many bytes or frames are in it.
    static let arenaTarget = 1 << 20
    static let maximumFrames = 8192

    private var arena: UnsafeMutableRawBufferPointer
    private var used = 0
    let frames: UnsafeMutableBufferPointer<FramePlace>
    /// The worker of each frame; `FrameBatch.otherShard` for a frame another shard processes.
    let workers: UnsafeMutableBufferPointer<Int>
    /// What each worker made of its frames (a lane per worker, so that no two threads write the same memory).
    let lanes: UnsafeMutableBufferPointer<Lane>
    private(set) var count = 0
    /// Frames copied in one by one (`append`), without their record headers; the others were read in blocks.
    private(set) var copiedCount = 0
    static let otherShard = -1

    /// One worker's results for a batch.
    struct Lane {
        /// The verdict on each of the batch's frames that are the worker's.
        let verdicts: UnsafeMutableBufferPointer<XDPAction>
        /// Replies generated, in the order of the frames they follow: their bytes in `replyBytes`.
        var replies: [Range<Int>] = []
        var replyBytes: [UInt8] = []
        /// The worker's frames with a verdict other than PASS or REDIRECT: dropped, or followed by a reply.
        var unpassed = 0
    }

    init(workers count: Int) {
        arena = .allocate(byteCount: Self.arenaTarget + 65536, alignment: 16)
        frames = .allocate(capacity: Self.maximumFrames)
        workers = .allocate(capacity: Self.maximumFrames)
        workers.initialize(repeating: 0)
        lanes = .allocate(capacity: count)
        _ = lanes.initialize(from: (0..<count).map { _ in
            Lane(verdicts: .allocate(capacity: Self.maximumFrames))
        })
    }

    deinit {
        arena.deallocate()
        frames.deallocate()
        workers.deallocate()
        for lane in lanes { lane.verdicts.deallocate() }
        lanes.deinitialize().deallocate()
    }

    var isFull: Bool { count == Self.maximumFrames || used >= Self.arenaTarget }

    func removeAll() {
        count = 0
        copiedCount = 0
        used = 0
        for index in lanes.indices {
            lanes[index].replies.removeAll(keepingCapacity: true)
            lanes[index].replyBytes.removeAll(keepingCapacity: true)
            lanes[index].unpassed = 0
        }
    }

    /// Copies a frame in (the reader's memory is valid only until its next read).
    func append(_ frame: CapturedFrame) {
        if used + frame.bytes.count > arena.count {  // only a frame larger than the slack grows the arena
            let larger = UnsafeMutableRawBufferPointer.allocate(byteCount: used + frame.bytes.count, alignment: 16)
            larger.copyMemory(from: UnsafeRawBufferPointer(rebasing: arena[0..<used]))
            arena.deallocate()
            arena = larger
        }
        UnsafeMutableRawBufferPointer(rebasing: arena[used..<used + frame.bytes.count])
            .copyMemory(from: UnsafeRawBufferPointer(frame.bytes))
        frames[count] = FramePlace(offset: used, length: frame.bytes.count, wireLength: frame.wireLength,
                                   timestamp: frame.timestamp, hasRecordHeader: false)
        used += frame.bytes.count
        count += 1
        copiedCount += 1
    }

    /// Reads whole records from `reader` straight into the arena (see `PcapReader.readRecords`); returns how
    /// many, 0 when the next frame is to be read with `next()` and `append`ed.
    func readRecords(from reader: PcapReader) -> Int {
        let read = reader.readRecords(into: arena, from: used,
                                      places: UnsafeMutableBufferPointer(rebasing: frames[count...]))
        used += read.byteCount
        count += read.frameCount
        return read.frameCount
    }

    /// The arena's bytes in `range` (whole records, to write as they are).
    func records(_ range: Range<Int>) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: arena[range])
    }

    /// The records of all the batch's frames, end to end as they were read: only when it has frames and every
    /// one was read in blocks (`copiedCount` is 0).
    var allRecords: UnsafeRawBufferPointer {
        let last = frames[count - 1]
        return records(frames[0].offset - PcapFormat.recordHeaderLength..<last.offset + last.length)
    }

    /// The bytes of frame `index`, to rewrite in place.
    func bytes(of index: Int) -> UnsafeMutableRawBufferPointer {
        let frame = frames[index]
        return UnsafeMutableRawBufferPointer(rebasing: arena[frame.offset..<frame.offset + frame.length])
    }
}
