"""Run the simulated rig until Ctrl-C: ``python -m simulator --help``."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys
import threading
from types import FrameType

from .config import PIXEL_FORMATS, RGB_ID, SWIR_ID, CameraSim, Faults, SimConfig, default_cameras
from .content import CONTENTS
from .rig import SimRig, SimStartError

log = logging.getLogger("simulator")

_SIZE_FLAGS = {
    "rgb": RGB_ID,
    "swir": SWIR_ID,
    "lwir": "cameradevice_lwir_1",
    "vnir": "cameradevice_vnir_playerone",
}


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = text.lower().split("x")
        return int(w), int(h)
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 1920x1080, got {text!r}") from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m simulator", description="Simulated Açıkgöz pan-tilt rig.")
    p.add_argument("--mqtt-host", default="127.0.0.1")
    p.add_argument("--mqtt-port", type=int, default=1883)
    p.add_argument("--topic-prefix", default="acikgoz")
    p.add_argument("--http-host", default="127.0.0.1")
    p.add_argument("--http-port", type=int, default=8080, help="0 picks a free port")
    p.add_argument("--ws-host", default="127.0.0.1")
    p.add_argument("--ws-port", type=int, default=10000, help="0 picks a free port")
    p.add_argument("--tls-cert", metavar="PEM", help="serve the frame stream as wss:// with this certificate")
    p.add_argument("--tls-key", metavar="PEM", help="the private key of --tls-cert")
    p.add_argument("--state-hz", type=float, default=10.0)
    p.add_argument("--start-delay", type=float, default=0.3, help="seconds before a move begins")
    p.add_argument("--fps", type=float, help="frame rate of every camera")
    p.add_argument(
        "--content",
        choices=CONTENTS,
        help="every camera's frames: the smooth scene, or it with fixed sensor noise or a fine pattern",
    )
    for short in _SIZE_FLAGS:
        p.add_argument(f"--{short}-size", type=_size, metavar="WxH")
        p.add_argument(f"--{short}-format", choices=PIXEL_FORMATS)
        p.add_argument(f"--{short}-fps", type=float)
    p.add_argument("--only", nargs="+", choices=sorted(_SIZE_FLAGS), help="serve only these cameras")
    p.add_argument("--frames-per-message", type=int, default=3)
    p.add_argument("--ack-timeout", type=float, default=2.0)
    timing = p.add_argument_group("camera timing (real hardware buffers and clocks; all off by default)")
    timing.add_argument(
        "--send-queue",
        action="store_true",
        help="queue every frame per camera per connection and send oldest first (default: newest only)",
    )
    timing.add_argument(
        "--send-queue-max-frames",
        type=int,
        default=600,
        metavar="N",
        help="bound of each camera's queue per connection; when full the oldest frame is dropped",
    )
    timing.add_argument(
        "--pipeline-delay",
        type=float,
        default=0.0,
        metavar="S",
        help="frames may be sent only S seconds after capture (cameras without their own delay)",
    )
    for short in _SIZE_FLAGS:
        timing.add_argument(f"--{short}-pipeline-delay", type=float, metavar="S")
        timing.add_argument(
            f"--{short}-clock-offset", type=float, metavar="S", help="stamps S seconds ahead of true time"
        )
        timing.add_argument(f"--{short}-clock-drift-ppm", type=float, metavar="P")
        timing.add_argument(
            f"--{short}-no-timestamps", action="store_true", help="frames carry no timestamp_ns"
        )
    faults = p.add_argument_group("faults")
    faults.add_argument("--drop-stream-after", type=float, metavar="S")
    faults.add_argument("--never-settle", action="store_true")
    faults.add_argument("--silent-state", nargs="+", default=[], metavar="DEVICE_ID")
    faults.add_argument("--malformed-every", type=int, metavar="N")
    faults.add_argument("--invoke-status", type=int)
    faults.add_argument("--invoke-delay", type=float, default=0.0, metavar="S")
    faults.add_argument("--stream-delay", type=float, default=0.0, metavar="S")
    faults.add_argument("--no-mqtt-response", action="store_true")
    p.add_argument("--log-level", default="INFO")
    return p


def config_from_args(args: argparse.Namespace) -> SimConfig:
    """Build a SimConfig from parsed command-line arguments."""
    cameras = default_cameras()
    for short, cid in _SIZE_FLAGS.items():
        cameras[cid] = _camera_from_args(args, short, cameras[cid])
    if args.only:
        keep = {_SIZE_FLAGS[s] for s in args.only}
        cameras = {cid: cam for cid, cam in cameras.items() if cid in keep}
    faults = Faults(
        drop_stream_after_s=args.drop_stream_after,
        never_settle=args.never_settle,
        silent_state=set(args.silent_state),
        malformed_every=args.malformed_every,
        invoke_status=args.invoke_status,
        invoke_delay_s=args.invoke_delay,
        stream_delay_s=args.stream_delay,
        mqtt_respond=not args.no_mqtt_response,
    )
    settings = {field: getattr(args, flag) for field, flag in _SETTING_FLAGS.items()}
    return SimConfig(cameras=cameras, faults=faults, **settings)


# SimConfig fields taken as they are from the command line: field -> argparse dest.
_SETTING_FLAGS = {
    **{name: name for name in ("mqtt_host", "mqtt_port", "topic_prefix", "http_host", "http_port")},
    **{name: name for name in ("ws_host", "ws_port", "state_hz", "frames_per_message", "send_queue")},
    "send_queue_max_frames": "send_queue_max_frames",
    "start_delay_s": "start_delay",
    "ack_timeout_s": "ack_timeout",
    "pipeline_delay_s": "pipeline_delay",
    "ws_tls_cert": "tls_cert",
    "ws_tls_key": "tls_key",
}


def _camera_from_args(args: argparse.Namespace, short: str, cam: CameraSim) -> CameraSim:
    """``cam`` with the ``--{short}-*`` flags applied (dataclasses.replace validates again)."""
    size = getattr(args, f"{short}_size")
    fmt = getattr(args, f"{short}_format")
    fps = getattr(args, f"{short}_fps") or args.fps
    delay = getattr(args, f"{short}_pipeline_delay")
    offset = getattr(args, f"{short}_clock_offset")
    drift = getattr(args, f"{short}_clock_drift_ppm")
    return dataclasses.replace(
        cam,
        pixel_format=fmt or cam.pixel_format,
        width=size[0] if size else cam.width,
        height=size[1] if size else cam.height,
        fps=fps or cam.fps,
        pipeline_delay_s=cam.pipeline_delay_s if delay is None else delay,
        clock_offset_s=cam.clock_offset_s if offset is None else offset,
        clock_drift_ppm=cam.clock_drift_ppm if drift is None else drift,
        send_timestamps=cam.send_timestamps and not getattr(args, f"{short}_no_timestamps"),
        content=getattr(args, "content", None) or cam.content,
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        cfg = config_from_args(args)
    except ValueError as exc:
        log.error("bad arguments: %s", exc)
        return 2
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    rig = SimRig(cfg)
    try:
        rig.start()
    except SimStartError as exc:
        log.error("%s", exc)
        return 1
    try:
        for cid, cam in cfg.cameras.items():
            log.info("camera %s: %s %dx%d @ %g fps", cid, cam.pixel_format, cam.width, cam.height, cam.fps)
        log.info("WebSocket frames on %s", rig.ws_url)
        log.info("HTTP invoke on %s", rig.http_url)
        log.info(
            "MQTT %s:%d, topics %s/entity_{state,command,response}/<device_id>",
            cfg.mqtt_host,
            cfg.mqtt_port,
            cfg.topic_prefix,
        )
        log.info("running; Ctrl-C stops")
        # Bounded waits so the signal handler's flag is seen promptly on every platform.
        while not stop.wait(0.5):
            pass
    finally:
        log.info("stopping")
        rig.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
