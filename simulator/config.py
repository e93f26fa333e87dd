"""Configuration of the simulated rig: cameras, fault switches and servers.

Device ids and state field names follow docs/protocol.md §1–§2; each is a default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from .content import CONTENTS, Content

PANTILT_ID = "acikgoz_pantilt"
LRF_ID = "acikgoz_lrf"
RGB_ID = "cameradevice_rgb_1"
SWIR_ID = "cameradevice_swir_1"
LWIR_ID = "cameradevice_lwir_1"
VNIR_ID = "cameradevice_vnir_playerone"

PIXEL_FORMATS = ("encoded", "mono8", "mono16", "rgb8", "bgr8")

# Hardware limits in the rig's own units (docs/protocol.md §3).
PAN_RANGE_X100 = (-18000, 18000)
TILT_RANGE_X100 = (-9000, 9000)
ZOOM_VALUE_RANGE = (1.0, 30.0)
ZOOM_STEP_RANGE = (0, 1000)

ZoomStyle = Literal["value", "step"]


@dataclass
class CameraSim:
    """One simulated camera.

    ``zoom_device`` cameras publish zoom state and accept a zoom command; ``zoom_style`` picks which:
    ``"value"`` is the RGB lens (``zoom_value`` 1..30, ``set_zoom_value``), ``"step"`` the SWIR lens
    (``zoom_lens_state.zoom_step`` 0..1000, ``set_zoom_step``).

    ``noise_sigma`` adds Gaussian sensor noise (standard deviation in the format's own counts) to every
    rendered view. The rendered scene is smooth, so without noise lossless formats compress it 25-45x
    and encode 3-5x faster than real sensor frames, which a benchmark of saving must not rely on.
    ``content`` adds a layer held constant per camera instead (simulator/content.py): ``"noise"``
    (fixed per-pixel sensor noise) or ``"pattern"`` (a structured high-frequency texture).

    Timing of a real camera (all off by default; see simulator/stream.py):

    - ``pipeline_delay_s``: a frame captured at t (rendered at the pose at t, stamped t) may be sent
      only from t + delay on, as a camera SDK, GigE driver or RTSP pipeline delivers it late. 0 means
      "use ``SimConfig.pipeline_delay_s``".
    - ``clock_offset_s`` / ``clock_drift_ppm``: the camera's clock. A frame's ``timestamp_ns`` is its
      true capture time + offset + drift x (time since the rig started); 10.0 is a clock 10 s ahead,
      100 ppm one that gains 0.1 ms a second.
    - ``send_timestamps`` False: frames carry no ``timestamp_ns`` key at all (frame_index stays).
    """

    pixel_format: str
    width: int
    height: int
    fps: float
    zoom_device: bool = False
    zoom_style: ZoomStyle = "value"
    noise_sigma: float = 0.0
    content: Content = "smooth"
    pipeline_delay_s: float = 0.0
    clock_offset_s: float = 0.0
    clock_drift_ppm: float = 0.0
    send_timestamps: bool = True

    def __post_init__(self) -> None:
        if self.pixel_format not in PIXEL_FORMATS:
            raise ValueError(f"pixel_format {self.pixel_format!r} not in {PIXEL_FORMATS}")
        if self.width < 16 or self.height < 16:
            raise ValueError(f"camera size {self.width}x{self.height} is below 16x16")
        if not self.fps > 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")
        if not self.noise_sigma >= 0:
            raise ValueError(f"noise_sigma must be >= 0, got {self.noise_sigma}")
        if self.content not in CONTENTS:
            raise ValueError(f"content {self.content!r} not in {CONTENTS}")
        check_delay("pipeline_delay_s", self.pipeline_delay_s)
        if not math.isfinite(self.clock_offset_s):
            raise ValueError(f"clock_offset_s must be a finite number of seconds, got {self.clock_offset_s}")
        # -1e6 ppm would be a stopped clock, below it one running backwards.
        if not (math.isfinite(self.clock_drift_ppm) and self.clock_drift_ppm > -1e6):
            raise ValueError(f"clock_drift_ppm must be finite and > -1e6, got {self.clock_drift_ppm}")
        if not isinstance(self.send_timestamps, bool):
            raise ValueError(f"send_timestamps must be True or False, got {self.send_timestamps!r}")


def check_delay(name: str, value: float) -> None:
    """Raise ValueError unless ``value`` is a finite number of seconds >= 0."""
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value}")


@dataclass
class Faults:
    """Fault switches; mutable while the rig runs (every reader looks them up each time)."""

    # Close every WS connection this many seconds after it opened (again after each reconnect).
    drop_stream_after_s: float | None = None
    # Pan/tilt keep jittering by a few x100 units forever, even at the target.
    never_settle: bool = False
    # Device ids whose entity_state is not published at all.
    silent_state: set[str] = field(default_factory=set)
    # Every Nth WS message of a connection is malformed, rotating: not msgpack; a frame with a wrong
    # byte count; a frame with an unknown pixel_format (the last two mixed with the good frames).
    malformed_every: int | None = None
    # HTTP invoke answers this status instead of executing the command.
    invoke_status: int | None = None
    # HTTP invoke sleeps this long before answering.
    invoke_delay_s: float = 0.0
    # Extra delay before each WS message.
    stream_delay_s: float = 0.0
    # Answer MQTT commands on the response topic.
    mqtt_respond: bool = True


def default_cameras() -> dict[str, CameraSim]:
    """The four cameras of the Açıkgöz rig at modest sizes."""
    return {
        RGB_ID: CameraSim("encoded", 640, 360, 15.0, zoom_device=True, zoom_style="value"),
        SWIR_ID: CameraSim("mono8", 320, 256, 15.0, zoom_device=True, zoom_style="step"),
        LWIR_ID: CameraSim("mono16", 320, 256, 15.0),
        VNIR_ID: CameraSim("encoded", 640, 480, 10.0),
    }


@dataclass
class SimConfig:
    """Everything the simulated rig needs; ports 0 mean "pick a free one"."""

    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    topic_prefix: str = "acikgoz"
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    ws_host: str = "127.0.0.1"
    ws_port: int = 10000
    # PEM certificate and key: the frame stream is served as wss:// (TLS) instead of ws://.
    ws_tls_cert: str | None = None
    ws_tls_key: str | None = None
    state_hz: float = 10.0
    start_delay_s: float = 0.3
    pan_speed_deg_s: float = 60.0
    tilt_speed_deg_s: float = 30.0
    rgb_zoom_speed: float = 5.0  # zoom_value units per second
    swir_zoom_speed: float = 200.0  # zoom steps per second
    cameras: dict[str, CameraSim] = field(default_factory=default_cameras)
    frames_per_message: int = 3
    ack_timeout_s: float = 2.0
    # The rig's send queue (simulator/stream.py). Off: each connection sends each camera's newest
    # frame and skips the older ones (a one-deep buffer per camera). On: each connection queues every
    # frame per camera and sends them oldest first, so a slow reader gets frames later and later
    # behind capture instead of gaps. Overflow policy: when a camera's queue on a connection holds
    # send_queue_max_frames frames, the OLDEST is dropped (counted in frames_skipped and
    # queue_overflow_drops) to make room. Frames are shared between connections and a stationary rig
    # serves cached pixels, so the bound is on references more than on bytes; a moving rig with large
    # raw frames can hold up to this many distinct frames per camera per connection.
    send_queue: bool = False
    send_queue_max_frames: int = 600
    # Pipeline delay of every camera whose own CameraSim.pipeline_delay_s is 0.
    pipeline_delay_s: float = 0.0
    faults: Faults = field(default_factory=Faults)
    pantilt_id: str = PANTILT_ID
    lrf_id: str = LRF_ID
    jpeg_quality: int = 90
    # Bounds of the in-memory logs behind sent_frames() / commands_received(); the oldest entries are
    # dropped beyond them so a simulator left running for days does not grow without limit.
    sent_frames_limit: int = 200_000
    commands_limit: int = 10_000
    # Clear the retained state topics on stop so a stopped rig does not look alive to a new subscriber.
    clear_retained_on_stop: bool = True
    start_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if not self.state_hz > 0:
            raise ValueError(f"state_hz must be > 0, got {self.state_hz}")
        if self.frames_per_message < 1:
            raise ValueError(f"frames_per_message must be >= 1, got {self.frames_per_message}")
        for name in ("pan_speed_deg_s", "tilt_speed_deg_s", "rgb_zoom_speed", "swir_zoom_speed"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")
        if self.start_delay_s < 0 or self.ack_timeout_s <= 0:
            raise ValueError("start_delay_s must be >= 0 and ack_timeout_s > 0")
        if self.send_queue_max_frames < 1:
            raise ValueError(f"send_queue_max_frames must be >= 1, got {self.send_queue_max_frames}")
        check_delay("pipeline_delay_s", self.pipeline_delay_s)
        if (self.ws_tls_cert is None) != (self.ws_tls_key is None):
            raise ValueError("give ws_tls_cert and ws_tls_key together (--tls-cert, --tls-key), or neither")

    def topic(self, kind: str, device_id: str) -> str:
        """``<prefix>/<kind>/<device_id>`` with kind entity_state / entity_command / entity_response."""
        return f"{self.topic_prefix}/{kind}/{device_id}"

    def pipeline_delay_of(self, camera_id: str) -> float:
        """The pipeline delay of one camera: its own, or the rig-wide one when its own is 0."""
        own = self.cameras[camera_id].pipeline_delay_s
        return own if own > 0 else self.pipeline_delay_s

    def zoom_cameras(self) -> dict[str, CameraSim]:
        """Cameras that have a zoom lens (they report zoom state)."""
        return {cid: cam for cid, cam in self.cameras.items() if cam.zoom_device}

    def device_ids(self) -> list[str]:
        """Every device the rig answers for."""
        return [self.pantilt_id, self.lrf_id, *self.cameras]
