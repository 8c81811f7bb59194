"""Verdicts to MQTT (a real Mosquitto broker, started here) and to a webhook: every verdict arrives
through an outage, none is lost when adedge stops first, and putting one never waits on the network."""

import json
import threading
import time

import pytest
from line_peers import TOPIC, Endpoint, Subscriber, free_port

from adedge.cli import main
from adedge.errors import AdedgeError
from adedge.runtime.line import delivery
from adedge.runtime.line.delivery import Forwarder, MqttSender, WebhookSender, open_forwarders


def _put(forwarder: Forwarder, frames: range) -> None:
    """Put a verdict per frame."""
    for frame in frames:
        forwarder.put({"frame": frame, "score": 0.1, "label": "OK"})


def test_mqtt_delivers_every_verdict_through_a_broker_outage(broker, tmp_path):
    subscriber = Subscriber(broker.port)
    forwarder = Forwarder(MqttSender(f"mqtt://127.0.0.1:{broker.port}/{TOPIC}"), tmp_path / "outbox", log=lambda line: None)
    try:
        _put(forwarder, range(0, 20))
        assert subscriber.wait_for(20) == set(range(20))
        broker.stop()
        _put(forwarder, range(20, 50))  # published while the broker is down
        time.sleep(1.0)
        assert len(forwarder.outbox) == 30
        broker.start()
        assert subscriber.wait_for(50) == set(range(50))
    finally:
        left = forwarder.close()
        subscriber.close()
    assert left == 0


def test_verdicts_left_when_adedge_stops_go_first_at_the_next_start(broker, tmp_path):
    url = f"mqtt://127.0.0.1:{broker.port}/{TOPIC}"
    subscriber = Subscriber(broker.port)
    broker.stop()
    first = Forwarder(MqttSender(url), tmp_path / "outbox", log=lambda line: None)
    _put(first, range(5))
    assert first.close(drain_seconds=0.5) == 5  # the broker is down: they stay on disk
    broker.start()
    second = Forwarder(MqttSender(url), tmp_path / "outbox", log=lambda line: None)
    _put(second, range(5, 8))
    try:
        assert subscriber.wait_for(8) == set(range(8))
    finally:
        assert second.close() == 0
        subscriber.close()
    assert sorted(subscriber.frames)[:8] == list(range(8))


def test_webhook_retries_through_errors_and_a_slow_endpoint_in_order(tmp_path, monkeypatch):
    monkeypatch.setattr(delivery, "TIMEOUT", 1.0)  # the endpoint below is slower than that
    endpoint = Endpoint()
    lines: list[str] = []
    forwarder = Forwarder(WebhookSender(endpoint.url), tmp_path / "outbox", log=lines.append)
    try:
        _put(forwarder, range(0, 5))
        assert endpoint.wait_for(5) == list(range(5))
        endpoint.status = 503
        _put(forwarder, range(5, 15))
        time.sleep(1.5)
        endpoint.delay = 2.0  # slower than the client waits
        _put(forwarder, range(15, 20))
        time.sleep(1.0)
        endpoint.status, endpoint.delay = 200, 0.0
        frames = endpoint.wait_for(20)  # a request that timed out on our side may still land there: at least once
        assert list(dict.fromkeys(frames)) == list(range(20))  # every verdict, first arrivals in order
    finally:
        assert forwarder.close() == 0
        endpoint.server.shutdown()
    assert any("HTTP 503" in line for line in lines) and any("delivering again" in line for line in lines)


def test_a_redirected_webhook_keeps_its_verdicts_queued_unless_told_to_follow(tmp_path):
    """A 301 to a POST is no delivery: urllib's default would GET the new location (no body) and
    count the 200 as delivered. Queued, one line names the new location; opted in, the body goes there."""
    moved, target = Endpoint(), Endpoint()
    moved.moved_to = target.url
    lines: list[str] = []
    forwarder = Forwarder(WebhookSender(moved.url), tmp_path / "outbox", log=lines.append)
    _put(forwarder, range(3))
    time.sleep(1.0)
    assert forwarder.close(drain_seconds=0.5) == 3 and forwarder.delivered == 0
    assert target.bodies == [] and target.gets == 0
    assert len(lines) == 1 and "HTTP 301" in lines[0] and target.url in lines[0]
    following = Forwarder(WebhookSender(moved.url, follow_redirects=True), tmp_path / "outbox", log=lines.append)
    try:
        assert target.wait_for(3) == [0, 1, 2] and target.gets == 0
    finally:
        assert following.close() == 0


def test_a_trickling_endpoint_cannot_hold_the_exit(tmp_path):
    """An endpoint that answers a byte now and then never trips a socket timeout: close() still
    returns after the drain, and the verdicts it was sending stay queued."""
    endpoint = Endpoint()
    endpoint.trickle = True
    forwarder = Forwarder(WebhookSender(endpoint.url), tmp_path / "outbox", log=lambda line: None)
    try:
        _put(forwarder, range(3))
        closing = threading.Thread(target=lambda: setattr(forwarder, "left", forwarder.close(drain_seconds=0.5)))
        closing.start()
        closing.join(30)  # without the bound: for ever
        assert not closing.is_alive() and forwarder.left == 3
    finally:
        endpoint.trickle = False


def test_webhook_endpoint_down_then_up(tmp_path):
    port = free_port()
    forwarder = Forwarder(WebhookSender(f"http://127.0.0.1:{port}/verdicts"), tmp_path / "outbox", log=lambda line: None)
    _put(forwarder, range(6))
    time.sleep(1.0)
    assert len(forwarder.outbox) == 6  # connection refused: all wait on disk
    endpoint = Endpoint(port)
    try:
        assert endpoint.wait_for(6) == list(range(6))
    finally:
        assert forwarder.close() == 0
        endpoint.server.shutdown()


def test_a_full_outbox_is_said_once_and_inspection_goes_on(tmp_path, monkeypatch):
    import sqlite3

    lines: list[str] = []
    forwarder = Forwarder(WebhookSender(f"http://127.0.0.1:{free_port()}/v"), tmp_path / "outbox", log=lines.append)

    def full(body: str) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(forwarder.outbox, "put", full)
    _put(forwarder, range(3))
    assert forwarder.unqueued == 3 and len(lines) == 1 and "disk is full" in lines[0]
    assert forwarder.close(drain_seconds=0.1) == 0


def test_a_garbled_endpoint_is_retried(tmp_path):
    """An endpoint that answers something that is not HTTP: the delivery thread lives on and retries."""
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def garble() -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            connection.recv(65536)
            connection.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            connection.close()

    threading.Thread(target=garble, daemon=True).start()
    lines: list[str] = []
    forwarder = Forwarder(WebhookSender(f"http://127.0.0.1:{port}/v"), tmp_path / "outbox", log=lines.append)
    _put(forwarder, range(2))
    time.sleep(1.0)
    assert forwarder.thread.is_alive() and len(lines) == 1 and len(forwarder.outbox) == 2
    assert forwarder.close(drain_seconds=0.1) == 2
    server.close()


@pytest.mark.parametrize(
    "mqtt, webhook, expected",
    [("http://host/topic", None, "--mqtt"), ("mqtt://host", None, "--mqtt"), ("mqtt://host/a/#", None, "--mqtt"), (None, "ftp://host/x", "--webhook")],
)
def test_bad_sink_urls_are_refused(mqtt, webhook, expected, tmp_path):
    with pytest.raises(AdedgeError, match=expected):
        open_forwarders(mqtt, webhook, tmp_path, log=lambda line: None)


def test_predict_publishes_each_verdict_to_mqtt_and_the_webhook(small_model, synthetic, broker, tmp_path, capsys):
    _, bundle = small_model
    subscriber, endpoint = Subscriber(broker.port), Endpoint()
    images = sorted(p for p in (synthetic / "test").rglob("*.png") if "ground_truth" not in p.parts)[:6]
    sinks = ["--mqtt", f"mqtt://127.0.0.1:{broker.port}/{TOPIC}", "--webhook", endpoint.url, "--outbox", str(tmp_path / "outbox")]
    try:
        code = main(["predict", str(bundle), *map(str, images), *sinks])
        captured = capsys.readouterr()
        lines = [json.loads(line) for line in captured.out.splitlines()]
        assert code == 0 and len(lines) == 6, captured.err
        assert "mqtt: 6 verdicts delivered" in captured.err and "webhook: 6 verdicts delivered" in captured.err
        assert subscriber.wait_for(6) == set(range(6))
        assert sorted(subscriber.messages, key=lambda m: m["frame"]) == lines  # the JSON lines themselves
        assert endpoint.wait_for(6) and endpoint.bodies == lines
    finally:
        subscriber.close()
        endpoint.server.shutdown()


class ListSink:
    """A toy sink, as docs/development.md says a new one is written: kind, target, error, send, close."""

    kind, target = "list", "memory"

    def __init__(self, failures: int) -> None:
        self.received, self.failures, self.error = [], failures, ""

    def send(self, bodies: list[str]) -> int:
        if self.failures:
            self.failures -= 1
            self.error = "down"
            return 0
        self.received += [json.loads(body)["frame"] for body in bodies]
        return len(bodies)

    def close(self) -> None:
        pass


def test_a_new_sink_is_one_class_and_gets_every_verdict_in_order_through_failures(tmp_path):
    sink, lines = ListSink(failures=2), []
    forwarder = Forwarder(sink, tmp_path / "outbox", log=lines.append)
    _put(forwarder, range(30))
    assert forwarder.close() == 0
    assert sink.received == list(range(30)) and forwarder.delivered == 30
    assert lines[0] == f"list memory: down; verdicts wait in {forwarder.outbox.path}, retrying" and "delivering again" in lines[-1]


class HungSink(ListSink):
    """A sink whose network hangs in send() until released."""

    def __init__(self) -> None:
        super().__init__(failures=0)
        self.sending, self.release = threading.Event(), threading.Event()

    def send(self, bodies: list[str]) -> int:
        self.sending.set()
        self.release.wait()
        return super().send(bodies)


def test_putting_a_verdict_never_waits_on_the_network(tmp_path):
    """While a send hangs, every put() still returns and queues its verdict; none is lost."""
    sink = HungSink()
    forwarder = Forwarder(sink, tmp_path / "outbox", log=lambda line: None)
    _put(forwarder, range(1))
    assert sink.sending.wait(30)
    putting = threading.Thread(target=_put, args=(forwarder, range(1, 50)))
    putting.start()
    putting.join(30)  # a failure detector only: put() waiting on the hung send would never return
    hung, queued = putting.is_alive(), len(forwarder.outbox)
    sink.release.set()
    assert not hung and queued == 50  # the record in the hung send stays queued until acknowledged
    assert forwarder.close() == 0 and sink.received == list(range(50))
