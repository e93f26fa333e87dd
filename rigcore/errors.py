"""The service's exception tree. Each error carries the data a person needs to act on it.

RigError
├── BrokerUnavailable      the MQTT broker is not connected
├── CommandFailed          a command was refused or could not be delivered
├── SettleError
│   ├── SettleTimeout      state arrived but never settled at the target in time
│   └── NoStateError       no usable state at all from a device in time
├── RecordingError         frames could not be written (disk full, not writable …)
├── JobCancelled           the operator cancelled the job
└── QueueFull              too many batches waiting
"""

from __future__ import annotations

from typing import Any


class RigError(Exception):
    """Base of every error the capture service reports to a user."""

    http_status = 500

    def to_dict(self) -> dict[str, Any]:
        return {"type": type(self).__name__, "message": str(self)}


class BrokerUnavailable(RigError):
    http_status = 503

    def __init__(self, host: str, port: int, detail: str = "") -> None:
        self.host, self.port, self.detail = host, port, detail
        extra = f": {detail}" if detail else ""
        super().__init__(f"MQTT broker at {host}:{port} is not connected{extra}")


class CommandFailed(RigError):
    http_status = 502

    def __init__(
        self,
        device_id: str,
        command_id: str,
        reason: str,
        status_code: int | None = None,
        response: Any = None,
    ) -> None:
        self.device_id, self.command_id, self.reason = device_id, command_id, reason
        self.status_code, self.response = status_code, response
        super().__init__(f"command {command_id} to {device_id} failed: {reason}")

    def to_dict(self) -> dict[str, Any]:
        return {
            **super().to_dict(),
            "device_id": self.device_id,
            "command_id": self.command_id,
            "status_code": self.status_code,
            "response": self.response,
        }


class SettleError(RigError):
    http_status = 504


class SettleTimeout(SettleError):
    def __init__(
        self,
        device_id: str,
        targets: dict[str, Any],
        last_values: dict[str, Any] | None,
        waited_s: float,
        reason: str,
    ) -> None:
        self.device_id, self.targets, self.last_values = device_id, targets, last_values
        self.waited_s, self.reason = waited_s, reason
        target_txt = (
            ", ".join(f"{k}={v}" for k, v in targets.items() if v is not None) or "no target (stable)"
        )
        last_txt = ", ".join(f"{k}={v}" for k, v in (last_values or {}).items()) or "none"
        super().__init__(
            f"{device_id} did not settle within {waited_s:.1f} s: target {target_txt}; "
            f"last value {last_txt}; {reason}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            **super().to_dict(),
            "device_id": self.device_id,
            "target": self.targets,
            "last_value": self.last_values,
            "waited_s": round(self.waited_s, 3),
        }


class NoStateError(SettleError):
    def __init__(self, device_id: str, topic: str, waited_s: float) -> None:
        self.device_id, self.topic, self.waited_s = device_id, topic, waited_s
        super().__init__(
            f"no state from {device_id} on topic {topic} for {waited_s:.1f} s "
            "(only fresh, non-retained messages count)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            **super().to_dict(),
            "device_id": self.device_id,
            "topic": self.topic,
            "waited_s": round(self.waited_s, 3),
        }


class RecordingError(RigError):
    http_status = 500


class JobCancelled(RigError):
    http_status = 409

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"job {job_id} was cancelled")


class QueueFull(RigError):
    http_status = 503

    def __init__(self, size: int) -> None:
        self.size = size
        super().__init__(f"{size} batches are already waiting; try again when the rig is free")
