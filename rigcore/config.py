"""Typed configuration loaded once from ``config.json``.

Every model forbids unknown keys, so a typo in ``config.json`` stops the start with a message that
names the key (docs/protocol.md §7). Defaults live here; the shipped ``config.json`` only needs what differs.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rigcore.config_events import EventsConfig, events_problem
from rigcore.config_fleet import CatalogConfig, NodeConfig, redact_password
from rigcore.config_foxglove import FoxgloveConfig, check_exposure
from rigcore.config_limits import limit_warnings
from rigcore.config_paths import SPILL_DIR, start_problems, start_warnings
from rigcore.config_tls import MqttTlsConfig, check_pair

PixelFormat = Literal["encoded", "mono8", "mono16", "rgb8", "bgr8"]
# Lossless formats for raw frames (sessions/writer.py): "fast" is the recommended one and names no codec,
# so it can follow the measurements; "tiff-zstd" is what it stands for now.
ImageFormat = Literal["fast", "png", "png-small", "tiff", "tiff-zstd"]
# Colour maps for mono display copies (camera.display holds their tables).
Colormap = Literal["gray", "inferno", "ironbow", "magma", "plasma", "viridis", "turbo", "jet", "hot", "bone"]

log = logging.getLogger(__name__)

# What GET /config shows in place of a secret; sent back by PUT /config it means "unchanged".
REDACTED = "***"
# Query parameters whose value is a credential (?token=…, ?api_key=…), redacted like a password.
_SECRET_QUERY = re.compile(
    r"([?&](?:[^=&#]*[_-])?(?:token|key|apikey|secret|password|passwd|pass|pwd|auth|sig|signature)=)([^&#]+)",
    re.IGNORECASE,
)


class ConfigError(Exception):
    """config.json is missing, not JSON, or does not validate; the message names the key."""


def _url_with(value: str, *schemes: str) -> str:
    """A URL field's check: it starts with one of ``schemes`` (the message names them)."""
    if not value.startswith(schemes):
        raise ValueError(f"must start with {' or '.join(schemes)}")
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Request threads beyond the waiting POSTs (queue_size + the running job) and the downloads
# (max_downloads) for every other call.
SPARE_THREADS = 8


class ApiConfig(_Model):
    host: str = "0.0.0.0"
    port: int = Field(5000, ge=0, le=65535)
    token: str | None = None
    max_body_bytes: int = Field(1_000_000, gt=0)
    queue_size: int = Field(20, ge=1)
    # How long a waiting POST blocks beyond the job's own worst case before it answers 202.
    wait_margin_s: float = Field(30.0, ge=0)
    # Host names (besides this machine's own) a browser may use to reach the API: the guard against
    # DNS rebinding answers 421 to any other name. "*" turns the guard off (unsafe).
    allowed_hosts: tuple[str, ...] = ()
    # The HTTP server (waitress). Threads run requests; None means queue_size + 1 + max_downloads +
    # SPARE_THREADS, so waiting POSTs (each holds a thread until its job ends) and downloads cannot
    # starve other calls.
    threads: int | None = Field(None, ge=1)
    # Open connections at once (idle ones included); past it new connections wait in the backlog.
    connection_limit: int = Field(500, ge=10)
    # A connection with no request running is closed after this long without traffic (whole seconds:
    # waitress takes an int).
    channel_timeout_s: int = Field(30, ge=1)
    # Downloads a request thread streams (a session's zip or MCAP, a byte range of a file): at most
    # this many at once from one client address, and in all; beyond, 503 (api.download_limits).
    max_downloads_per_client: int = Field(2, ge=1)
    max_downloads: int = Field(8, ge=1)
    # A connection whose client has read nothing of its answer for this long is closed (api.server).
    download_send_timeout_s: float = Field(30.0, gt=0)
    # PEM certificate (with its chain) and private key: HTTPS on api.port, and no plain HTTP
    # (api.server_tls; docs/operations/tls.md). Set only in config.json.
    tls_cert: str | None = None
    tls_key: str | None = None

    @field_validator("allowed_hosts")
    @classmethod
    def _bare_host_names(cls, hosts: tuple[str, ...]) -> tuple[str, ...]:
        for host in hosts:
            if not host or any(c in host for c in "/@ \t") or re.fullmatch(r"[^:\[\]]+:\d*", host):
                raise ValueError(
                    f"{host!r}: give a bare host name such as 'rig.lab.example' (no scheme, port or "
                    "path), or '*'"
                )
        return tuple(h.lower().rstrip(".") for h in hosts)

    @model_validator(mode="after")
    def _tls_pair(self) -> ApiConfig:
        check_pair(self.tls_cert, self.tls_key, "tls_cert", "tls_key")
        return self

    def worker_threads(self) -> int:
        # Waiting POSTs and streamed downloads each hold a thread; SPARE_THREADS stay for the rest.
        return self.threads or self.queue_size + 1 + self.max_downloads + SPARE_THREADS


class MqttConfig(_Model):
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    client_id_prefix: str = "rigcapture"
    topic_prefix: str = "acikgoz"
    keepalive_s: int = Field(30, ge=5)
    response_timeout_s: float = Field(2.0, gt=0)
    # paho's reconnect back-off takes whole seconds.
    reconnect_min_s: int = Field(1, ge=1)
    reconnect_max_s: int = Field(8, ge=1)
    # The broker over TLS (rigcore.config_tls); null: plain MQTT. Set only in config.json.
    tls: MqttTlsConfig | None = None

    def state_topic(self, device_id: str) -> str:
        return f"{self.topic_prefix}/entity_state/{device_id}"

    def command_topic(self, device_id: str) -> str:
        return f"{self.topic_prefix}/entity_command/{device_id}"

    def response_topic(self, device_id: str) -> str:
        return f"{self.topic_prefix}/entity_response/{device_id}"


class HttpTransportConfig(_Model):
    connect_timeout_s: float = Field(3.0, gt=0)
    read_timeout_s: float = Field(10.0, gt=0)


class StreamConfig(_Model):
    url: str
    # Only these cameras are taken from this stream; empty means every configured camera.
    cameras: tuple[str, ...] = ()

    _ws_url = field_validator("url")(lambda v: _url_with(v, "ws://", "wss://"))


class StreamClientConfig(_Model):
    max_message_bytes: int = Field(64 * 1024 * 1024, ge=20 * 1024 * 1024)
    reconnect_min_s: float = Field(0.2, gt=0)
    reconnect_max_s: float = Field(5.0, gt=0)
    open_timeout_s: float = Field(5.0, gt=0)
    # Frames kept from before a recording starts so that frames that arrived between the settle
    # point and the moment the recorder was attached are not lost. Oldest dropped first.
    preroll_s: float = Field(0.25, ge=0)
    # While no job needs frames, each message is answered this late, so a rig that waits for the
    # answer slows down instead of sending frames nobody records (0 = always full rate).
    idle_ack_delay_s: float = Field(0.1, ge=0, le=1)
    # CA certificates (PEM) that wss:// stream URLs are checked against; null: the system's. Set only
    # in config.json (rigcore.config_tls).
    ca_file: str | None = None


class DisplayConfig(_Model):
    """How a mono camera's frames are shown (previews, thumbnails, live view; camera.display): ``min``
    and ``max`` in the frame's raw units map linearly, clipped, onto ``colormap``, so a value keeps
    its colour across frames and sessions. Without min/max the percentile stretch is coloured."""

    min: float | None = None
    max: float | None = None
    colormap: Colormap = "gray"

    @model_validator(mode="after")
    def _range(self) -> DisplayConfig:
        if (self.min is None) != (self.max is None):
            raise ValueError("give both min and max (a fixed range), or neither (percentile stretch)")
        if self.min is not None and self.max is not None and not self.min < self.max:
            raise ValueError(f"min ({self.min:g}) must be less than max ({self.max:g})")
        return self


class CameraConfig(_Model):
    pixel_format: PixelFormat = "encoded"
    # Dotted path of the zoom value in this camera's entity_state; null for a fixed lens.
    zoom_field: str | None = None
    previews: bool = False
    image_format: ImageFormat = "fast"
    # Fixed display range and colour map for mono frames; null: each frame's 2nd-98th percentile.
    display: DisplayConfig | None = None
    # Seconds from capture to arrival assumed for a frame timed by its arrival: a camera that sends
    # no timestamp_ns, or whose stamps were judged implausible (docs/protocol.md §5).
    latency_s: float = Field(0.0, ge=0, le=60)


class PositioningCommand(_Model):
    """A command that moves something; the batch waits for its state field to settle."""

    arg: str
    field: str
    tolerance: float = Field(0.0, ge=0)
    min: float | None = None
    max: float | None = None
    integer: bool = False


class PanTiltConfig(_Model):
    device_id: str = "acikgoz_pantilt"
    pan_field: str = "pan_deg_x100"
    tilt_field: str = "tilt_deg_x100"
    # A boolean the rig may send (e.g. "moving"): when set, it must be false to count as settled.
    moving_field: str | None = None


class RangeFinderConfig(_Model):
    device_id: str = "acikgoz_lrf"
    distance_field: str = "measured_distance_meters"


class SettleConfig(_Model):
    window_s: float = Field(0.5, ge=0)
    min_messages: int = Field(5, ge=1)
    timeout_s: float = Field(60.0, gt=0)


class CaptureTimeConfig(_Model):
    """How a frame's capture time is judged (camera.capture_clock, docs/protocol.md §5)."""

    # A camera whose smallest delay (arrival − capture) over window_s stays above this has stamps
    # that cannot be trusted (or a pipeline too slow to wait for): it falls back to arrival time.
    max_delay_s: float = Field(3.0, gt=0, le=60)
    # Stamps ahead of their arrival by more than this mark the camera's clock as failed.
    ahead_tolerance_s: float = Field(0.1, ge=0, le=10)
    # The sliding window the smallest delay is taken over: a backlog shorter than this never counts
    # against a clock. A failed clock is trusted again after a whole window of plausible stamps.
    window_s: float = Field(5.0, gt=0, le=120)
    # After a recording's window ends, how long to wait for frames captured inside it to arrive
    # (null: max_delay_s, or the largest camera latency_s if more, plus one second).
    late_wait_s: float | None = Field(None, ge=0, le=120)

    def late_wait(self, latencies: Iterable[float]) -> float:
        if self.late_wait_s is not None:
            return self.late_wait_s
        return max(self.max_delay_s, *latencies) + 1.0


class RecordingConfig(_Model):
    max_duration_s: float = Field(600.0, gt=0)
    command_id: str = "start_recording_command"
    # Threads that encode and write frames while the recording runs (0 = one per core).
    writer_threads: int = Field(0, ge=0)
    # Threads at nice 10 that help the writers (nice 19) while a frame has waited a second for its
    # encode (sessions.writer_threads); 0 = none.
    catchup_threads: int = Field(1, ge=0)
    # Received frames held in memory waiting for their write; beyond this they are spilled to
    # images_data/spill/ and encoded from there (null = no cap). Nothing is ever dropped.
    memory_cap_mb: float | None = Field(None, gt=0)
    # Seconds of the streams' ingest rate kept mapped and ready for incoming frames (camera.pool), so
    # the stream reader never waits on fresh memory; within memory_cap_mb. 0 = no warm buffers.
    warm_buffer_s: float = Field(2.0, ge=0, le=60)


class RemoteStorageConfig(_Model):
    """An S3-compatible object store (AWS S3, MinIO, Ceph RGW) every saved session is copied to
    (service.uploads). Set only in config.json; GET /config shows the keys as ***."""

    # null: AWS S3 for ``region``; otherwise the store's URL, e.g. "http://minio.lab:9000".
    endpoint: str | None = None
    bucket: str = Field(min_length=3, max_length=63)
    # Put before every key: "rig-a/" stores s3://<bucket>/rig-a/<session_id>/<file>.
    prefix: str = ""
    access_key: str = Field(min_length=1)
    secret_key: str = Field(min_length=1)
    region: str = "us-east-1"
    delete_local_after_upload: bool = False
    # Files larger than this go up in parts of part_size_mb (S3's smallest part is 5 MiB).
    multipart_threshold_mb: int = Field(64, ge=5)
    part_size_mb: int = Field(16, ge=5, le=5120)
    # Objects uploaded at once (parallel requests hide the store's latency on small frame files).
    concurrency: int = Field(4, ge=1, le=32)
    # "path" (http://host/bucket/key) works on MinIO, Ceph and AWS; "virtual" puts the bucket in the host.
    addressing_style: Literal["path", "virtual", "auto"] = "path"
    # Back-off between attempts after a failure: doubling from retry_min_s, capped, jittered.
    retry_min_s: float = Field(2.0, gt=0)
    retry_max_s: float = Field(300.0, gt=0)
    connect_timeout_s: float = Field(10.0, gt=0)
    read_timeout_s: float = Field(60.0, gt=0)

    _http_endpoint = field_validator("endpoint")(
        lambda v: None if v is None else _url_with(v, "http://", "https://")
    )


class StorageConfig(_Model):
    # Free space (MiB) a recording must leave in save_dir by its estimate (service.disk_guard); a
    # recording that would leave less is refused before the rig is commanded. 0 = no check.
    min_free_mb: float = Field(500.0, ge=0)
    # Where saved sessions are uploaded (service.uploads); null = they stay local only.
    remote: RemoteStorageConfig | None = None


def _default_cameras() -> dict[str, CameraConfig]:
    return {
        "cameradevice_rgb_1": CameraConfig(pixel_format="encoded", zoom_field="zoom_value"),
        "cameradevice_swir_1": CameraConfig(pixel_format="mono8", zoom_field="zoom_lens_state.zoom_step"),
        "cameradevice_lwir_1": CameraConfig(pixel_format="mono16"),
        "cameradevice_vnir_playerone": CameraConfig(pixel_format="encoded"),
    }


def _angle(axis: str, limit_x100: int) -> PositioningCommand:
    """An axis set in hundredths of a degree within +-``limit_x100``, settled within 0.05 degree."""
    return PositioningCommand(
        arg=f"{axis}_position_deg_x100",
        field=f"{axis}_deg_x100",
        tolerance=5,
        min=-limit_x100,
        max=limit_x100,
        integer=True,
    )


def _default_positioning() -> dict[str, PositioningCommand]:
    return {
        "set_pan_position_degree": _angle("pan", 18000),
        "set_tilt_position_degree": _angle("tilt", 9000),
        "set_zoom_value": PositioningCommand(arg="zoom_value", field="zoom_value", tolerance=0),
        "set_zoom_step": PositioningCommand(
            arg="zoom_step", field="zoom_lens_state.zoom_step", tolerance=0, min=0, integer=True
        ),
    }


class Config(_Model):
    api: ApiConfig = ApiConfig()
    mqtt: MqttConfig = MqttConfig()
    command_transport: Literal["mqtt", "http"] = "mqtt"
    invoke_url: str = "http://127.0.0.1:8080/api/1.0/invoke"
    http: HttpTransportConfig = HttpTransportConfig()
    streams: tuple[StreamConfig, ...] = (StreamConfig(url="ws://127.0.0.1:10000"),)
    stream_client: StreamClientConfig = StreamClientConfig()
    save_dir: str = "save_images"
    images_data_dir: str = "images_data"
    history_file: str = "history.json"
    pantilt: PanTiltConfig = PanTiltConfig()
    rangefinder: RangeFinderConfig = RangeFinderConfig()
    cameras: dict[str, CameraConfig] = Field(default_factory=_default_cameras)
    # Devices that take commands but report nothing the service reads.
    extra_devices: tuple[str, ...] = ()
    positioning_commands: dict[str, PositioningCommand] = Field(default_factory=_default_positioning)
    settle: SettleConfig = SettleConfig()
    capture_time: CaptureTimeConfig = CaptureTimeConfig()
    recording: RecordingConfig = RecordingConfig()
    storage: StorageConfig = StorageConfig()
    # Folders outside the folder of config.json where PUT /config may put save_dir, images_data_dir
    # and history_file (relative to that folder). Set only in config.json: PUT /config refuses it.
    storage_roots: tuple[str, ...] = ()
    # The live Foxglove server (service.live, docs/operations/foxglove.md).
    foxglove: FoxgloveConfig = FoxgloveConfig()
    # This node among the fleet, and where the session catalog lives (docs/operations/fleet.md).
    node: NodeConfig = Field(default_factory=NodeConfig)
    catalog: CatalogConfig = CatalogConfig()
    # Event capture: the ring of the last seconds and its triggers (docs/operations/events.md).
    events: EventsConfig = EventsConfig()

    _http_url = field_validator("invoke_url")(lambda v: _url_with(v, "http://", "https://"))

    @model_validator(mode="after")
    def _consistent(self) -> Config:
        if not self.cameras:
            raise ValueError("cameras: at least one camera must be configured")
        for stream in self.streams:
            for cam in stream.cameras:
                if cam not in self.cameras:
                    raise ValueError(f"streams: camera {cam!r} is not in cameras")
        check_exposure(self.foxglove, self.api.token)  # names foxglove.host
        if (ring := events_problem(self.events, self.cameras, self.recording.memory_cap_mb)) is not None:
            raise ValueError(ring)
        return self

    # -- derived -------------------------------------------------------------------------------
    def known_devices(self) -> set[str]:
        return {self.pantilt.device_id, self.rangefinder.device_id, *self.cameras, *self.extra_devices}

    def state_devices(self) -> set[str]:
        """Devices whose entity_state the service follows."""
        return {self.pantilt.device_id, self.rangefinder.device_id, *self.cameras}

    def resolve(self, base: Path) -> ResolvedPaths:
        def p(value: str) -> Path:
            path = Path(value)
            return path if path.is_absolute() else base / path

        return ResolvedPaths(
            save_dir=p(self.save_dir),
            images_data_dir=p(self.images_data_dir),
            history_file=p(self.history_file),
        )

    @classmethod
    def from_dict(cls, data: Any) -> Config:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(describe_validation_error(exc)) from exc

    @classmethod
    def load(cls, path: str | Path) -> Config:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"{path}: file not found") from exc
        except ValueError as exc:
            raise ConfigError(f"{path}: not valid JSON: {exc}") from exc
        try:
            config = cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(f"{path}: {describe_validation_error(exc)}") from exc
        config.check_own_files(path)
        return config

    def check_own_files(self, config_path: Path) -> None:
        """At start the operator's paths are taken as written as to where they lie (only warned
        about), but not when they clash with a file the service owns or a folder served without the
        token (rigcore.config_paths.start_problems): ConfigError then."""
        config_file = config_path.resolve()
        if self.resolve(config_file.parent).history_file.resolve() == config_file:
            raise ConfigError(
                f"{config_path}: history_file: names this configuration file itself; the request "
                "history would overwrite it, choose another file"
            )
        paths = {"save_dir": self.save_dir, "images_data_dir": self.images_data_dir}
        paths["history_file"] = self.history_file
        clashes = start_problems(paths, config_file)
        if clashes:
            raise ConfigError(f"{config_path}: " + "; ".join(clashes) + "; change these paths in config.json")
        for warning in [*start_warnings(paths, self.storage_roots, config_file), *self.limit_warnings()]:
            log.warning("%s: %s", config_path, warning)

    def limit_warnings(self) -> list[str]:
        """Numbers beyond what PUT /config may set (rigcore.config_limits): warned, not refused."""
        return limit_warnings(self.model_dump(mode="json"))

    def to_json(self, *, redact: bool = False) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        return redact_secrets(data) if redact else data


def redact_url(url: str) -> str:
    """``ws://user:pass@host/x?token=t`` → ``ws://***@host/x?token=***``: credentials in a URL."""
    scheme, sep, rest = url.partition("://")
    netloc = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    if sep and "@" in netloc:
        url = f"{scheme}://{REDACTED}@{netloc.rpartition('@')[2]}{rest[len(netloc) :]}"
    return _SECRET_QUERY.sub(rf"\g<1>{REDACTED}", url)


def redact_secrets(data: dict[str, Any]) -> dict[str, Any]:
    """GET /config's view of ``Config.to_json()``: the token, passwords and URL credentials as ***."""
    for section, key in (("api", "token"), ("mqtt", "password")):
        if data[section].get(key):
            data[section][key] = REDACTED
    remote = data.get("storage", {}).get("remote")
    if remote:
        for key in ("access_key", "secret_key"):
            remote[key] = REDACTED
    data["invoke_url"] = redact_url(data["invoke_url"])
    for stream in data["streams"]:
        stream["url"] = redact_url(stream["url"])
    for section in ("catalog", "node"):  # rigcore.config_fleet: the user stays, the password is ***
        if data.get(section, {}).get("url"):
            data[section]["url"] = redact_password(data[section]["url"])
    return data


class ResolvedPaths(_Model):
    save_dir: Path
    images_data_dir: Path
    history_file: Path

    @property
    def spill_dir(self) -> Path:
        """Where frames spilled while recording go (rigcore.config_paths.SPILL_DIR)."""
        return self.images_data_dir / SPILL_DIR


def validation_details(exc: ValidationError) -> list[dict[str, str]]:
    """One ``{"field", "message"}`` per problem, the field as a dotted key (``api.port``)."""
    return [
        {
            "field": ".".join(str(p) for p in err["loc"]) or "(top level)",
            "message": "unknown key" if err["type"] == "extra_forbidden" else err["msg"],
        }
        for err in exc.errors()
    ]


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem, each naming the dotted key: ``api.port: Input should be ...``."""
    return "; ".join(f"{d['field']}: {d['message']}" for d in validation_details(exc))
