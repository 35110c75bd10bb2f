import Dispatch
import Foundation

/// The threads of a run's workers, started once: `run` hands each its index of one job and returns when all
/// have finished, two semaphore hand-offs a job, with no thread pool in between (a pool of as many threads as
/// cores, shared with the run's other work, would often run a batch's workers one after the other).
final class WorkerThreads: @unchecked Sendable {
    let count: Int
    /// The job of the current `run`; written before the threads are woken, read by them only.
    private var job: ((Int) -> Void)?
    private var stopping = false
    private let wake: [DispatchSemaphore]
    private let finished = DispatchSemaphore(value: 0)

    init(count: Int) {
        self.count = count
        wake = (0..<count).map { _ in DispatchSemaphore(value: 0) }
        for index in 0..<count {
            Thread.detachNewThread { [self] in
                while true {
                    wake[index].wait()
                    if stopping { break }
                    job?(index)
                    finished.signal()
                }
                finished.signal()
            }
        }
    }

    /// Runs `job(0)` ... `job(count - 1)` on the threads at once.
    func run(_ job: (Int) -> Void) {
        withoutActuallyEscaping(job) { job in
            self.job = job
            for semaphore in wake { semaphore.signal() }
            for _ in 0..<count { finished.wait() }
            self.job = nil
        }
    }

    /// Ends the threads.
    func stop() {
        stopping = true
        for semaphore in wake { semaphore.signal() }
        for _ in 0..<count { finished.wait() }
    }
}
