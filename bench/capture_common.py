"""Capture benchmark (bench/capture_bench.py): the settings and figures every part shares."""

from __future__ import annotations

import logging
import signal
import socket
import sys
from pathlib import Path

from rigcore.heap import keep_heap_warm
from service.status import JobStatus

log = logging.getLogger("capture_bench")

# A job that ended one of these ways is not followed further.
ENDED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)

REPO = Path(__file__).resolve().parent.parent

MIB = 2**20
MB = 10**6
BROKER = ("127.0.0.1", 1883)
SAMPLE_PERIOD_S = 0.05  # psutil poll of the service's RSS and CPU
BOUNDARY_S = 0.05  # frames sent this close to a window edge may legitimately arrive on its other side
BARE_WARMUP_S = 1.0  # the bare receiver reads this long before its window opens
SERVICE_START_TIMEOUT_S = 60.0  # imports, broker and stream connection
SERVICE_READY_TIMEOUT_S = 30.0
SERVICE_STOP_TIMEOUT_S = 120.0  # SIGINT waits for the writer threads; then SIGKILL
HTTP_TIMEOUT_S = 10.0  # any call but the recording's POST
ENCODE_SAMPLES = 4  # frames per camera re-encoded for the encode CPU figure
DISK_PROBE_MIN = 256 * MIB
DISK_PROBE_MAX = 1024 * MIB
DISK_PROBE_CHUNK = 8 * MIB
DEFAULT_MEMORY_CAP_MB = 1024.0
RSS_SLACK_MIB = 300.0  # the "+ 300 MB" of the memory targets
BUSY_MACHINE_CORES = 0.2  # other programs' load above which the bench warns
# Formats held to issue 15's targets on W2: save lag <= 0.1 x duration, session <= 0.75 x raw bytes.
FAST_FORMATS = frozenset({"fast", "tiff-zstd"})
FAST_LAG_PER_DURATION = 0.1
FAST_SESSION_PER_RAW = 0.75
MIN_OF_NOMINAL = 0.95  # issue 24: frames saved per camera >= 0.95 x fps x duration with the fast formats


class BenchError(Exception):
    """A run could not be completed (service did not start, job failed, …); the message says why."""


def _on_sigterm(signum: int, _frame: object) -> None:
    # Unwind like Ctrl-C does, so the service process, the rig and the temporary folders are cleaned up.
    raise SystemExit(128 + signum)


def start_bench(json_only: bool) -> bool:
    """What every capture-path benchmark does first: the rig in this process gets its message buffers
    from a warm heap, as the service does (rigcore/heap.py), so that it does not slow itself down on
    fresh pages; SIGTERM unwinds like Ctrl-C; logging to stderr (warnings only with ``json_only``).
    False, having said why, when no MQTT broker answers on BROKER."""
    keep_heap_warm()
    signal.signal(signal.SIGTERM, _on_sigterm)
    logging.basicConfig(
        level=logging.WARNING if json_only else logging.INFO,
        format="%(asctime)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("simulator", "websockets", "paho"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        with socket.create_connection(BROKER, timeout=2):
            pass
    except OSError as exc:
        print(
            f"no MQTT broker on {BROKER[0]}:{BROKER[1]} ({exc}); start Mosquitto (.ci/run does)",
            file=sys.stderr,
        )
        return False
    return True
