import PacketIO

/// Frames read from a capture into one arena, where the workers rewrite them in place and from where they are
/// written in input order. One batch serves the whole run: nothing is allocated per frame.
final class FrameBatch {
    struct Frame {
        var offset: Int
        var length: Int
        var wireLength: Int
        var timestamp: Int64
    }

    /// A batch ends once this many bytes or frames are in it.
    static let arenaTarget = 1 << 20
    static let maximumFrames = 8192

    private var arena: UnsafeMutableRawBufferPointer
    private var used = 0
    let frames: UnsafeMutableBufferPointer<Frame>
    /// The worker of each frame; `FrameBatch.otherShard` for a frame another shard processes.
    let workers: UnsafeMutableBufferPointer<Int>
    private(set) var count = 0
    static let otherShard = -1

    init() {
        arena = .allocate(byteCount: Self.arenaTarget + 65536, alignment: 16)
        frames = .allocate(capacity: Self.maximumFrames)
        workers = .allocate(capacity: Self.maximumFrames)
        workers.initialize(repeating: 0)
    }

    deinit {
        arena.deallocate()
        frames.deallocate()
        workers.deallocate()
    }

    var isFull: Bool { count == Self.maximumFrames || used >= Self.arenaTarget }

    func removeAll() {
        count = 0
        used = 0
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
        frames[count] = Frame(offset: used, length: frame.bytes.count, wireLength: frame.wireLength,
                              timestamp: frame.timestamp)
        used += frame.bytes.count
        count += 1
    }

    /// The bytes of frame `index`, to rewrite in place.
    func bytes(of index: Int) -> UnsafeMutableRawBufferPointer {
        let frame = frames[index]
        return UnsafeMutableRawBufferPointer(rebasing: arena[frame.offset..<frame.offset + frame.length])
    }
}
