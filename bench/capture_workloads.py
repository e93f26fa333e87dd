"""Capture benchmark: the workloads (cameras, formats, rates, durations)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.capture_common import MB
from camera.frames import expected_size
from simulator.config import LWIR_ID, RGB_ID, SWIR_ID, CameraSim
from simulator.content import Content

# -- workloads ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    cameras: dict[str, CameraSim]
    duration_s: float
    min_completeness: float  # per camera
    # The save lag target: at most this many times the duration, or this many times the save limit.
    lag_per_duration: float | None = None
    lag_per_limit: float | None = None
    memory_cap_mb: float | None = None

    def frame_bytes(self, camera_id: str) -> int | None:
        """Pixel bytes of one raw frame; None for ``encoded`` (JPEG, size varies)."""
        cam = self.cameras[camera_id]
        return expected_size(cam.pixel_format, cam.width, cam.height)


def make_workload(
    name: str,
    duration_s: float | None,
    memory_cap_mb: float,
    noise_sigma: float | None = None,
    content: Content = "smooth",
) -> Workload:
    """A workload; ``noise_sigma`` adds sensor noise to the simulated frames (see --sim-noise),
    ``content`` a layer held constant per camera (simulator/content.py; see --content)."""
    extra: dict[str, Any] = {"content": content}
    if noise_sigma is not None:
        extra["noise_sigma"] = noise_sigma

    def cam(fmt: str, width: int, height: int, fps: float, **kw: Any) -> CameraSim:
        return CameraSim(fmt, width, height, fps, **kw, **extra)

    def rgb(fmt: str) -> CameraSim:
        return cam(fmt, 1920, 1080, 30.0, zoom_device=True, zoom_style="value")

    if name == "W1":
        cams = {
            RGB_ID: rgb("encoded"),
            SWIR_ID: cam("mono8", 640, 512, 30.0, zoom_device=True, zoom_style="step"),
            LWIR_ID: cam("mono16", 640, 512, 30.0),
        }
        desc = "RGB JPEG 1920x1080@30, SWIR mono8 640x512@30, LWIR mono16 640x512@30"
        return Workload(name, desc, cams, duration_s or 10.0, min_completeness=1.0, lag_per_duration=0.25)
    cams = {
        RGB_ID: rgb("rgb8"),
        SWIR_ID: cam("mono16", 1280, 1024, 60.0, zoom_device=True, zoom_style="step"),
    }
    desc = "RGB rgb8 1920x1080@30, SWIR mono16 1280x1024@60"
    if name == "W2":
        return Workload(name, desc, cams, duration_s or 10.0, min_completeness=0.99, lag_per_limit=1.2)
    if name == "W2-long":
        desc += f", memory cap {memory_cap_mb:g} MiB"
        return Workload(
            name,
            desc,
            cams,
            duration_s or 60.0,
            min_completeness=0.99,
            lag_per_limit=1.2,
            memory_cap_mb=memory_cap_mb,
        )
    raise ValueError(f"unknown workload {name!r}")


def nominal_mb_s(wl: Workload) -> float | None:
    total = 0.0
    for cid, cam in wl.cameras.items():
        size = wl.frame_bytes(cid)
        if size is None:
            return None
        total += size * cam.fps
    return total / MB
