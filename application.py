"""rigcapture: drive the pan-tilt rig and record its cameras.

    python application.py [--config config.json] [--host H] [--port P] [--transport mqtt|http] [--simulate]
                          [--log-level DEBUG|INFO|WARNING|ERROR] [--log-format text|json]

``--simulate`` also starts the simulated rig (and an embedded MQTT broker when none answers at the
configured address), so the service can be tried without hardware. The log goes to stderr: one line
per job event, refused request, configuration change and upload, as text (local ISO times) or, with
``--log-format json``, one JSON object per line (docs/operations/troubleshooting.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

from api import create_app
from api.server import ApiServer
from api.server_tls import TlsSetupError
from rigcore.config import ApiConfig, Config, ConfigError
from rigcore.config_tls_files import missing_tls_files, with_tls_paths_resolved
from rigcore.heap import keep_heap_warm
from service.capture import CaptureService

log = logging.getLogger("rigcapture")

EXAMPLE_BATCH = {
    "requests": [
        {
            "target_id": "entity",
            "device_id": "acikgoz_pantilt",
            "command_id": "set_pan_position_degree",
            "args": {"pan_position_deg_x100": 4500},
        },
        {
            "target_id": "entity",
            "device_id": "acikgoz_pantilt",
            "command_id": "set_tilt_position_degree",
            "args": {"tilt_position_deg_x100": -1000},
        },
        {
            "target_id": "camera_device",
            "device_id": "cameradevice_swir_1",
            "command_id": "start_recording_command",
            "args": {
                "duration_second": 3,
                "camera_ids": ["cameradevice_swir_1", "cameradevice_lwir_1", "cameradevice_rgb_1"],
            },
        },
    ]
}


def default_config_path() -> Path:
    """config.json beside application.py when run from a checkout; once installed as a package
    (the ``rigcapture`` command), config.json in the current folder."""
    beside = Path(__file__).with_name("config.json")
    return beside if beside.is_file() else Path.cwd() / "config.json"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--config",
        default=str(default_config_path()),
        help="path of config.json (default: beside application.py in a checkout, else ./config.json)",
    )
    p.add_argument("--host", help="listen address (overrides api.host)")
    p.add_argument("--port", type=int, help="listen port (overrides api.port)")
    p.add_argument("--transport", choices=("mqtt", "http"), help="overrides command_transport")
    p.add_argument("--simulate", action="store_true", help="also run the simulated rig on loopback")
    p.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=LOG_LEVELS,
        help="the least severe lines logged (default: INFO, one line per job event)",
    )
    p.add_argument(
        "--log-format",
        default="text",
        choices=("text", "json"),
        help="text: one readable line per event (default); json: one JSON object per line",
    )
    return p.parse_args(argv)


# -- the log -----------------------------------------------------------------------------------------
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# What every LogRecord has; anything else on a record was passed as ``extra`` (its fields in JSON).
_RECORD_KEYS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


def local_iso(epoch: float) -> str:
    """Epoch seconds as local ISO 8601 to the millisecond, with the offset."""
    return dt.datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="milliseconds")


class TextFormatter(logging.Formatter):
    """``2026-12-06T10:21:57.495+01:00 INFO rigcapture.jobs: job … accepted …``: local ISO times."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return local_iso(record.created)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (local ISO), ts (epoch s), level, logger, message, the record's
    ``extra`` fields (``event``, ``job_id`` …) and, for an exception, its traceback."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": local_iso(record.created),
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update({k: v for k, v in record.__dict__.items() if k not in _RECORD_KEYS and k not in out})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def setup_logging(level: str, fmt: str) -> None:
    """The root logger at ``level``, to stderr, as text or JSON lines."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)


def load_config(args: argparse.Namespace) -> Config:
    # TLS files are named relative to config.json's folder; made absolute once, here.
    config = with_tls_paths_resolved(Config.load(args.config), Path(args.config).resolve().parent)
    if missing := missing_tls_files(config):
        raise ConfigError(f"{args.config}: {'; '.join(missing)}")
    overrides: dict[str, Any] = {}
    if args.host or args.port is not None:
        api = config.api.model_copy(update={k: v for k, v in (("host", args.host), ("port", args.port)) if v})
        overrides["api"] = api
    if args.transport:
        overrides["command_transport"] = args.transport
    return config.model_copy(update=overrides) if overrides else config


class Simulation:
    """The simulated rig and, if no broker answers, an embedded one (for --simulate)."""

    def __init__(self, config: Config) -> None:
        from simulator.broker import EmbeddedBroker, broker_reachable
        from simulator.config import SimConfig
        from simulator.rig import SimRig

        self.broker: EmbeddedBroker | None = None
        if not broker_reachable(config.mqtt.host, config.mqtt.port):
            log.info("no MQTT broker at %s:%s; starting the embedded one", config.mqtt.host, config.mqtt.port)
            self.broker = EmbeddedBroker(config.mqtt.host, config.mqtt.port)
            self.broker.start()
        ws = urlsplit(config.streams[0].url)
        http = urlsplit(config.invoke_url)
        self.rig = SimRig(
            SimConfig(
                mqtt_host=config.mqtt.host,
                mqtt_port=config.mqtt.port,
                topic_prefix=config.mqtt.topic_prefix,
                http_host=http.hostname or "127.0.0.1",
                http_port=http.port or 8080,
                ws_host=ws.hostname or "127.0.0.1",
                ws_port=ws.port or 10000,
            )
        )
        self.rig.start()

    def stop(self) -> None:
        self.rig.stop()
        if self.broker is not None:
            self.broker.stop()


def warn_risky_settings(api: ApiConfig) -> None:
    loopback = api.host in ("127.0.0.1", "localhost", "::1")
    if not loopback and not api.token:
        log.warning("listening on %s without api.token: anyone on the network can drive the rig", api.host)
    if not loopback and api.token and not api.tls_cert:
        log.warning(
            "listening on %s with api.token but without TLS: the token, the history and the frames "
            "cross the network in clear; set api.tls_cert and api.tls_key (docs/operations/tls.md)",
            api.host,
        )
    if api.threads is not None and api.threads <= api.queue_size + 1 + api.max_downloads:
        log.warning(
            "api.threads %d <= api.queue_size + 1 + api.max_downloads: waiting POSTs and downloads "
            "(one thread each until they end) can leave no thread for other calls",
            api.threads,
        )
    if "*" in api.allowed_hosts:
        log.warning('api.allowed_hosts has "*": the Host check against DNS rebinding is off')


def stop_on_signals(server: ApiServer) -> None:
    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: shutting down", signum)
        # From a thread: the handler may interrupt the serving loop inside the lock shutdown takes.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)


def serve(service: CaptureService, config: Config) -> int:
    """Serve the API until SIGINT or SIGTERM; the exit status."""
    try:
        server = ApiServer(create_app(service), config.api)
    except TlsSetupError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # address in use, unknown host name, no permission
        print(f"cannot listen on {config.api.host}:{config.api.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    try:
        stop_on_signals(server)
        url = server.url
        if not service.wait_ready(10):
            log.warning("broker or streams not connected yet; GET %s/status shows which", url)
        print(banner(url, config), flush=True)
        print("example request:", flush=True)
        trust = " --cacert <CA file>" if server.scheme == "https" else ""
        print(
            f"  curl{trust} -X POST {url}/process-request -H 'Content-Type: application/json' "
            f"-d '{json.dumps(EXAMPLE_BATCH)}'",
            flush=True,
        )
        server.serve_forever()
    finally:
        server.close()
    return 0


DEFAULT_URL = "http://127.0.0.1:5000"  # rigcli's default --url


def banner(url: str, config: Config) -> str:
    """What the start prints: where the service listens, its dashboard, and the CLI to try first."""
    cli = "rigcli" if url == DEFAULT_URL else f"rigcli --url {url}"
    token = " (with RIGCAPTURE_TOKEN set to api.token)" if config.api.token else ""
    return "\n".join(
        (
            f"rigcapture listening on {url} (transport: {config.command_transport})",
            f"  dashboard:    {url}/",
            f"  command line: {cli} status{token}   (from a checkout: .venv/bin/python -m {cli} status)",
        )
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    try:
        config = load_config(args)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    warn_risky_settings(config.api)
    keep_heap_warm()  # before the stream starts: see rigcore/heap.py
    sim = Simulation(config) if args.simulate else None
    config_path = Path(args.config).resolve()
    service = CaptureService(config, base_dir=config_path.parent, config_path=config_path)
    try:
        service.start()
        return serve(service, config)
    finally:
        service.stop()
        if sim is not None:
            sim.stop()


if __name__ == "__main__":
    sys.exit(main())
