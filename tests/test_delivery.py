"""Verdicts to MQTT (a real Mosquitto broker, started here) and to a webhook: every verdict arrives
through an outage, none is lost when adedge stops first, and putting one never waits on the network."""

import getpass
import http.server
import json
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from adedge.errors import AdedgeError
from adedge.runtime.delivery import Forwarder, MqttSender, WebhookSender, open_forwarders

MOSQUITTO = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
needs_mosquitto = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed (CI installs Debian's: apt-get install mosquitto)")
TOPIC = "line/3/verdicts"


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return sock.getsockname()[1]


class Broker:
    """Mosquitto on a port of its own, with persistence, so a subscriber's session and the messages
    queued for it survive the broker's restart (as a plant's broker would be set up)."""

    def __init__(self, folder: Path) -> None:
        self.port, self.process = _free_port(), None
        self.config = folder / "mosquitto.conf"
        self.config.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\nuser {getpass.getuser()}\npersistence true\npersistence_location {folder}/\n")

    def start(self) -> None:
        self.process = subprocess.Popen([MOSQUITTO, "-c", str(self.config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("mosquitto did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


class Subscriber:
    """A QoS 1 subscriber with a persistent session: it gets what was published while it was away."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as mqtt

        self.frames: list[int] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="adedge-test-subscriber", clean_session=False)
        self.client.on_connect = lambda client, *_: client.subscribe(TOPIC, qos=1)
        self.client.on_message = lambda client, userdata, message: self.frames.append(json.loads(message.payload)["frame"])
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.reconnect_delay_set(0.2, 1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(10), "the subscriber could not subscribe"

    def wait_for(self, count: int, seconds: float = 30) -> set[int]:
        deadline = time.monotonic() + seconds
        while len(set(self.frames)) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return set(self.frames)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def broker(tmp_path):
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (CI installs Debian's: apt-get install mosquitto)")
    broker = Broker(tmp_path)
    broker.start()
    yield broker
    if broker.process.poll() is None:
        broker.stop()


def _put_timed(forwarder: Forwarder, frames: range) -> float:
    """Put a verdict per frame; the slowest put's seconds."""
    slowest = 0.0
    for frame in frames:
        start = time.perf_counter()
        forwarder.put({"frame": frame, "score": 0.1, "label": "OK"})
        slowest = max(slowest, time.perf_counter() - start)
    return slowest


def test_mqtt_delivers_every_verdict_through_a_broker_outage(broker, tmp_path):
    subscriber = Subscriber(broker.port)
    forwarder = Forwarder(MqttSender(f"mqtt://127.0.0.1:{broker.port}/{TOPIC}"), tmp_path / "outbox", log=lambda line: None)
    try:
        _put_timed(forwarder, range(0, 20))
        assert subscriber.wait_for(20) == set(range(20))
        broker.stop()
        slowest = _put_timed(forwarder, range(20, 50))  # published while the broker is down
        time.sleep(1.0)
        assert len(forwarder.outbox) == 30
        broker.start()
        assert subscriber.wait_for(50) == set(range(50))
        assert slowest < 0.5, f"a put waited {slowest:.2f} s for the network"
    finally:
        left = forwarder.close()
        subscriber.close()
    assert left == 0


def test_verdicts_left_when_adedge_stops_go_first_at_the_next_start(broker, tmp_path):
    url = f"mqtt://127.0.0.1:{broker.port}/{TOPIC}"
    subscriber = Subscriber(broker.port)
    broker.stop()
    first = Forwarder(MqttSender(url), tmp_path / "outbox", log=lambda line: None)
    _put_timed(first, range(5))
    assert first.close(drain_seconds=0.5) == 5  # the broker is down: they stay on disk
    broker.start()
    second = Forwarder(MqttSender(url), tmp_path / "outbox", log=lambda line: None)
    _put_timed(second, range(5, 8))
    try:
        assert subscriber.wait_for(8) == set(range(8))
    finally:
        assert second.close() == 0
        subscriber.close()
    assert sorted(subscriber.frames)[:8] == list(range(8))


class Endpoint:
    """A webhook receiver whose answer can be switched: ok, an error status, or slow."""

    def __init__(self, port: int = 0) -> None:
        self.bodies: list[dict] = []
        self.status, self.delay = 200, 0.0
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                time.sleep(endpoint.delay)
                if endpoint.status == 200:
                    endpoint.bodies.append(body)
                self.send_response(endpoint.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/verdicts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count: int, seconds: float = 30) -> list[int]:
        deadline = time.monotonic() + seconds
        while len(self.bodies) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return [body["frame"] for body in self.bodies]


def test_webhook_retries_through_errors_and_a_slow_endpoint_in_order(tmp_path):
    endpoint = Endpoint()
    lines: list[str] = []
    forwarder = Forwarder(WebhookSender(endpoint.url), tmp_path / "outbox", log=lines.append)
    try:
        _put_timed(forwarder, range(0, 5))
        assert endpoint.wait_for(5) == list(range(5))
        endpoint.status = 503
        _put_timed(forwarder, range(5, 15))
        time.sleep(1.5)
        endpoint.delay = 8.0  # slower than the client waits
        assert _put_timed(forwarder, range(15, 20)) < 0.5
        time.sleep(1.0)
        endpoint.status, endpoint.delay = 200, 0.0
        assert endpoint.wait_for(20) == list(range(20))
    finally:
        assert forwarder.close() == 0
        endpoint.server.shutdown()
    assert any("HTTP 503" in line for line in lines) and any("delivering again" in line for line in lines)


def test_webhook_endpoint_down_then_up(tmp_path):
    port = _free_port()
    forwarder = Forwarder(WebhookSender(f"http://127.0.0.1:{port}/verdicts"), tmp_path / "outbox", log=lambda line: None)
    _put_timed(forwarder, range(6))
    time.sleep(1.0)
    assert len(forwarder.outbox) == 6  # connection refused: all wait on disk
    endpoint = Endpoint(port)
    try:
        assert endpoint.wait_for(6) == list(range(6))
    finally:
        assert forwarder.close() == 0
        endpoint.server.shutdown()


@pytest.mark.parametrize(
    "mqtt, webhook, expected",
    [("http://host/topic", None, "--mqtt"), ("mqtt://host", None, "--mqtt"), ("mqtt://host/a/#", None, "--mqtt"), (None, "ftp://host/x", "--webhook")],
)
def test_bad_sink_urls_are_refused(mqtt, webhook, expected, tmp_path):
    with pytest.raises(AdedgeError, match=expected):
        open_forwarders(mqtt, webhook, tmp_path, log=lambda line: None)
