import Dataplane
import PacketWire

/// One pass over a capture, in frame order, collecting the sightings of its frames for the run's `CaptureReplies`
/// and handing them over: the run's reading of each batch, or the look-ahead reading. A pass sees every frame from
/// the capture's start, also those the replies have recorded already, for its clock.
struct SightingPass {
    let replies: CaptureReplies
    let linkType: LinkType
    /// The replies' unchanging copy, held here so that a frame is decoded without a call through the class.
    private let decoder: ObservedBackends
    private var reported = ReportedPairs()
    private var sightings: [ObservedBackends.Sighting] = []
    /// The latest timestamp of the frames seen.
    private(set) var clock: CaptureClock

    init(replies: CaptureReplies, linkType: LinkType) {
        self.replies = replies
        self.linkType = linkType
        decoder = replies.decoder
        clock = decoder.captureClock()
    }

    /// Collects the sightings of the capture's frame number `number`, the next one.
    mutating func scan(_ bytes: UnsafeMutableRawBufferPointer, number: Int, wireLength: Int, timestamp: Int64) {
        clock.advance(to: timestamp)
        guard let networkOffset = decoder.candidateOffset(in: bytes, linkType: linkType, clock: clock,
                                                          reported: reported),
              let sighting = decoder.sighting(in: bytes, networkOffset: networkOffset, frame: number,
                                              wireLength: wireLength, timestamp: timestamp, clock: clock,
                                              reported: &reported)
        else { return }
        sightings.append(sighting)
    }

    /// Collects the sightings of `batch`, which follows `framesBefore` frames.
    mutating func scan(_ batch: FrameBatch, framesBefore: Int) {
        for index in 0..<batch.count {
            let frame = batch.frames[index]
            scan(batch.bytes(of: index), number: framesBefore + index, wireLength: frame.wireLength,
                 timestamp: frame.timestamp)
        }
    }

    /// Records the sightings collected, the pass having seen every frame before number `frames`.
    mutating func record(throughFrame frames: Int) {
        replies.record(sightings, throughFrame: frames, clock: clock.time)
        sightings.removeAll(keepingCapacity: true)
    }
}
