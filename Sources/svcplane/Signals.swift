import Foundation
import Node
import Pipeline

/// The signals a run reacts to between two packets: each sets a flag the run polls.
enum SignalFlags {
    /// SIGINT and SIGTERM stop a run between packets, so that what was written is flushed.
    static func installInterruption() {
        Interruption.requested.store(false, ordering: .relaxed)  // initialised here, never inside the handler
        install([SIGINT, SIGTERM]) { _ in Interruption.requested.store(true, ordering: .relaxed) }
    }

    /// SIGUSR1 asks a running node for a conntrack dump now.
    static func installDumpRequest() {
        DumpRequest.requested.store(false, ordering: .relaxed)
        install([SIGUSR1]) { _ in DumpRequest.requested.store(true, ordering: .relaxed) }
    }

    /// Installs `handler` without SA_RESTART, so that a read blocked on a pipe or the node's poll returns and the
    /// flag is seen at once, and unblocks the signals (a parent's thread pool may have started us with them
    /// blocked: the mask survives exec).
    private static func install(_ signals: [Int32], handler: @convention(c) (Int32) -> Void) {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = handler
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0
        var set = sigset_t()
        sigemptyset(&set)
        for signal in signals {
            sigaction(signal, &action, nil)
            sigaddset(&set, signal)
        }
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }
}
