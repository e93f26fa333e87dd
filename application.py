"""rigcapture: drive the pan-tilt rig and record its cameras.

    python application.py [--config config.json] [--host H] [--port P] [--transport mqtt|http] [--simulate]

``--simulate`` also starts the simulated rig (and an embedded MQTT broker when none answers at the
configured address), so the service can be tried without hardware.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, Protocol, cast
from urllib.parse import urlsplit

from flask import Flask
from waitress import wasyncore
from waitress.server import BaseWSGIServer, create_server

from api import create_app
from rigcore.config import ApiConfig, Config, ConfigError
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
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


def load_config(args: argparse.Namespace) -> Config:
    config = Config.load(args.config)
    overrides: dict[str, Any] = {}
    if args.host or args.port is not None:
        api = config.api.model_copy(update={k: v for k, v in (("host", args.host), ("port", args.port)) if v})
        overrides["api"] = api
    if args.transport:
        overrides["command_transport"] = args.transport
    return config.model_copy(update=overrides) if overrides else config


class _Trigger(Protocol):
    # waitress's wake-up pipe; its stubs type it as int and its thunks as taking an argument.
    def pull_trigger(self, thunk: Callable[[], object]) -> None: ...


class ApiServer:
    """The API on waitress, the same on Linux and Windows.

    One I/O loop holds every connection and reads each request whole before one of ``threads`` runs
    it, so idle or slow clients cost a socket, not a thread; connections with no request running are
    closed after ``api.channel_timeout_s``. Run :meth:`serve_forever` in one thread, stop it with
    :meth:`shutdown` from another, then :meth:`close`.
    """

    def __init__(self, app: Flask, api: ApiConfig) -> None:
        self._map: dict[int, Any] = {}
        self._sock = _listen_socket(api.host, api.port)
        server = create_server(
            app,
            map=self._map,
            sockets=[self._sock],
            threads=api.worker_threads(),
            connection_limit=api.connection_limit,
            channel_timeout=api.channel_timeout_s,
            # How often idle connections are looked for: often enough to honour short timeouts.
            cleanup_interval=max(1, min(30, api.channel_timeout_s // 2)),
            # poll() has no 1024-descriptor ceiling (select() stays in use where poll is missing).
            asyncore_use_poll=True,
            # Bodies a little over api.max_body_bytes reach Flask, whose 413 names the key and is
            # kept in history; far larger ones are refused before they are read (nor spooled).
            max_request_body_size=4 * api.max_body_bytes + 65536,
        )
        if not isinstance(server, BaseWSGIServer):  # one socket gives one server
            raise TypeError(f"unexpected waitress server {type(server).__name__}")
        self._server = server
        self._host = api.host

    @property
    def port(self) -> int:
        port: int = self._sock.getsockname()[1]
        return port

    @property
    def url(self) -> str:
        """A URL that reaches the server from this machine (loopback when it listens on every address)."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self._host, self._host)
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    def serve_forever(self) -> None:
        self._server.run()

    def shutdown(self) -> None:
        """Make :meth:`serve_forever` return; from any thread but the serving one (not a signal handler:
        it may interrupt the loop while it holds the trigger's lock)."""
        trigger = cast(_Trigger, self._server.trigger)
        try:
            # Closing every connection in the loop's own thread empties its map, which ends the loop.
            trigger.pull_trigger(lambda: wasyncore.close_all(self._map))
        except OSError:
            pass  # the trigger is closed: the loop has already stopped (a second Ctrl-C)

    def close(self, timeout: int = 2) -> None:
        """Stop the request threads; requests still running are abandoned (the threads are daemons)."""
        wasyncore.close_all(self._map)  # no-op after shutdown; closes the socket if it never served
        self._server.task_dispatcher.shutdown(timeout=timeout)


def _listen_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host``'s first address, so a name is resolved once and port 0 means one port."""
    family, _, _, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    return socket.create_server(address, family=family)


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
    if api.host not in ("127.0.0.1", "localhost", "::1") and not api.token:
        log.warning("listening on %s without api.token: anyone on the network can drive the rig", api.host)
    if api.threads is not None and api.threads < api.queue_size + 2:
        log.warning(
            "api.threads %d < api.queue_size + 2: waiting POSTs (one thread each until their job ends) "
            "can leave no thread for other calls",
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
    except OSError as exc:  # address in use, unknown host name, no permission
        print(f"cannot listen on {config.api.host}:{config.api.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    try:
        stop_on_signals(server)
        url = server.url
        if not service.wait_ready(10):
            log.warning("broker or streams not connected yet; GET %s/status shows which", url)
        print(f"rigcapture listening on {url} (transport: {config.command_transport})", flush=True)
        print("example request:", flush=True)
        print(
            f"  curl -X POST {url}/process-request -H 'Content-Type: application/json' "
            f"-d '{json.dumps(EXAMPLE_BATCH)}'",
            flush=True,
        )
        server.serve_forever()
    finally:
        server.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
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
