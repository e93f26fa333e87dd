"""Simulated Açıkgöz pan-tilt rig speaking docs/protocol.md, for tests, benches and demos.

from simulator import SimRig, SimConfig
with SimRig(SimConfig(http_port=0, ws_port=0)) as rig:
    ...  # rig.ws_url, rig.http_url, rig.pose(), rig.sent_frames(), rig.faults.never_settle = True
"""

from .config import CameraSim, Faults, SimConfig
from .rig import SimError, SimRig, SimStartError
from .stream import SentFrame

__all__ = ["CameraSim", "Faults", "SentFrame", "SimConfig", "SimError", "SimRig", "SimStartError"]
