import Dataplane
import PacketWire

/// One pass over a capture, in frame order, collecting the sightings of the frames it is given for the run's
/// `CaptureReplies` and handing them over: the run's reading of each batch, or the look-ahead reading.
struct SightingPass {
    let replies: CaptureReplies
    let linkType: LinkType
    private var reported = ReportedPairs()
    private var sightings: [ObservedBackends.Sighting] = []

    init(replies: CaptureReplies, linkType: LinkType) {
        self.replies = replies
        self.linkType = linkType
    }

    /// Collects the sighting of the capture's frame number `number`, if it is one.
    mutating func scan(_ bytes: UnsafeMutableRawBufferPointer, number: Int, wireLength: Int, timestamp: Int64) {
        if let sighting = replies.sighting(in: bytes, frame: number, linkType: linkType, wireLength: wireLength,
                                           timestamp: timestamp, reported: &reported)
        {
            sightings.append(sighting)
        }
    }

    /// Collects the sightings of `batch`, which follows `framesBefore` frames.
    mutating func scan(_ batch: FrameBatch, framesBefore: Int) {
        for index in 0..<batch.count {
            let frame = batch.frames[index]
            scan(batch.bytes(of: index), number: framesBefore + index, wireLength: frame.wireLength,
                 timestamp: frame.timestamp)
        }
    }

    /// Records the sightings collected, the pass having seen every frame before number `frames` that the replies
    /// had not recorded.
    mutating func record(throughFrame frames: Int) {
        replies.record(sightings, throughFrame: frames)
        sightings.removeAll(keepingCapacity: true)
    }
}
