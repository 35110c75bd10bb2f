import Dataplane
import PacketWire

/// How a run divides a capture's connections (by `FlowSharding`'s symmetric key): `--shard K/N` keeps shard K
/// of N, and `--workers W` splits what is kept among W programs that run in parallel. The low byte of a frame's
/// key (`FlowSharding.residue`) modulo N·W is a slot s: the frame is shard s mod N's and, within it, worker s / N's.
public struct ConnectionPartition: Sendable {
    public let sharding: FlowSharding
    public let workers: Int
    /// No frame is left to another shard (there is one shard).
    let keepsEveryFrame: Bool
    /// The worker of each residue, or `FrameBatch.otherShard`.
    private let workerOfResidue: [Int]

    public init(sharding: FlowSharding, shardIndex: Int = 0, shardCount: Int = 1, workers: Int = 1) {
        precondition(shardCount * workers <= FlowSharding.maximumShards && (0..<shardCount).contains(shardIndex))
        self.sharding = sharding
        self.workers = workers
        keepsEveryFrame = shardCount == 1
        workerOfResidue = (0..<FlowSharding.maximumShards).map { residue in
            let slot = residue % (shardCount * workers)
            return slot % shardCount == shardIndex ? slot / shardCount : FrameBatch.otherShard
        }
    }

    /// The worker of a frame, or `FrameBatch.otherShard` when the frame is another shard's.
    func worker(of frame: UnsafeMutableRawBufferPointer, wireLength: Int, linkType: LinkType) -> Int {
        workerOfResidue[Int(sharding.residue(of: frame, wireLength: wireLength, linkType: linkType))]
    }
}
