import Dataplane
import PacketWire

/// How a run divides a capture's connections (by `FlowSharding`'s symmetric key): `--shard K/N` keeps shard K
/// of N, and `--workers W` splits what is kept among W programs that run in parallel. Frame key residues are
/// taken modulo N·W: residue r is shard r mod N and, within it, worker r / N.
public struct ConnectionPartition: Sendable {
    public let sharding: FlowSharding
    public let shardIndex: Int
    public let shardCount: Int
    public let workers: Int

    public init(sharding: FlowSharding, shardIndex: Int = 0, shardCount: Int = 1, workers: Int = 1) {
        precondition(shardCount * workers <= FlowSharding.maximumShards && (0..<shardCount).contains(shardIndex))
        self.sharding = sharding
        self.shardIndex = shardIndex
        self.shardCount = shardCount
        self.workers = workers
    }

    /// The worker of a frame, or `FrameBatch.otherShard` when the frame is another shard's.
    func worker(of frame: UnsafeMutableRawBufferPointer, wireLength: Int, linkType: LinkType) -> Int {
        let residue = sharding.shard(of: frame, wireLength: wireLength, linkType: linkType,
                                     count: shardCount * workers)
        return residue % shardCount == shardIndex ? residue / shardCount : FrameBatch.otherShard
    }
}
