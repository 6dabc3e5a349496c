"""Stopping a child process the tests or the benchmarks started (a peer, strace, a load
generator): ask it with a signal, give it a grace period, then kill it."""
import signal
import subprocess


def stop_process(proc, grace=5, sig=signal.SIGTERM):
    """Sends sig to proc if it still runs, waits up to grace seconds for it to end, else kills
    it (and reaps it either way). Returns whether it was still running."""
    if proc.poll() is not None:
        return False
    proc.send_signal(sig)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return True
