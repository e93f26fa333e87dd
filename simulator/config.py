"""Configuration of the simulated rig: cameras, fault switches and servers.

Device ids and state field names follow docs/protocol.md §1–§2; each is a default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

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
    """

    pixel_format: str
    width: int
    height: int
    fps: float
    zoom_device: bool = False
    zoom_style: ZoomStyle = "value"
    noise_sigma: float = 0.0

    def __post_init__(self) -> None:
        if self.pixel_format not in PIXEL_FORMATS:
            raise ValueError(f"pixel_format {self.pixel_format!r} not in {PIXEL_FORMATS}")
        if self.width < 16 or self.height < 16:
            raise ValueError(f"camera size {self.width}x{self.height} is below 16x16")
        if not self.fps > 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")
        if not self.noise_sigma >= 0:
            raise ValueError(f"noise_sigma must be >= 0, got {self.noise_sigma}")


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
    state_hz: float = 10.0
    start_delay_s: float = 0.3
    pan_speed_deg_s: float = 60.0
    tilt_speed_deg_s: float = 30.0
    rgb_zoom_speed: float = 5.0  # zoom_value units per second
    swir_zoom_speed: float = 200.0  # zoom steps per second
    cameras: dict[str, CameraSim] = field(default_factory=default_cameras)
    frames_per_message: int = 3
    ack_timeout_s: float = 2.0
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

    def topic(self, kind: str, device_id: str) -> str:
        """``<prefix>/<kind>/<device_id>`` with kind entity_state / entity_command / entity_response."""
        return f"{self.topic_prefix}/{kind}/{device_id}"

    def zoom_cameras(self) -> dict[str, CameraSim]:
        """Cameras that have a zoom lens (they report zoom state)."""
        return {cid: cam for cid, cam in self.cameras.items() if cam.zoom_device}

    def device_ids(self) -> list[str]:
        """Every device the rig answers for."""
        return [self.pantilt_id, self.lrf_id, *self.cameras]
