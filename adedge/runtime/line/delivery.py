"""Line integration: every verdict to an MQTT broker (QoS 1) or an HTTP webhook, through a disk outbox.

Inspection never waits for the network: each verdict is committed to the sink's Outbox (a local
SQLite insert) and a background thread delivers them in order, retrying with back-off while the
broker or endpoint is down or slow. Verdicts left when adedge stops stay in the outbox and go
first at the next start. Delivery is at least once: a verdict whose acknowledgement was lost is
sent again, so a consumer that must count each frame once keys on (run, frame).
"""

import hashlib
import http.client
import os
import secrets
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Protocol
from urllib.parse import ParseResult, unquote, urlparse

from adedge.errors import AdedgeError, printable
from adedge.fileio import json_text
from adedge.runtime.line.outbox import Outbox

RETRY_FIRST, RETRY_MAX = 0.5, 5.0  # seconds between delivery attempts while a sink is down: doubling, capped
WINDOW = 50  # verdicts sent before waiting for their acknowledgements
TIMEOUT = 5.0  # seconds an acknowledgement or HTTP response may take before the attempt counts as failed
DRAIN_SECONDS = 10.0  # at the end of a stream: how long to keep delivering before leaving the rest queued
# after the drain, how long a send in flight (a slow or trickling endpoint) may take before it is left to
# itself: its verdicts stay in the outbox for the next start
ABANDON_SECONDS = 1.0


def default_outbox_folder() -> Path:
    """Where outboxes live unless --outbox says otherwise: the user's state folder, so verdicts
    queued by one run are delivered by the next wherever it is started from."""
    state = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(state) / "adedge" / "outbox"


def _parsed(url: str, option: str) -> ParseResult:
    """URL split into its parts, port included, or one line saying what is wrong with it."""
    try:
        parts = urlparse(url)
        parts.port  # noqa: B018 - a port that is not a number from 0 to 65535 raises here
    except ValueError as exc:
        raise AdedgeError(f"{option} URL {url!r} is malformed: {exc}") from None
    return parts


class Sender(Protocol):
    """A sink: what a Forwarder delivers through. A new sink is one more class with these members
    (and a line in open_forwarders); the outbox, ordering, retries and back-off are the Forwarder's."""

    kind: str  # "mqtt", "webhook": names the outbox and the log lines
    target: str  # where to, for the log (no secrets)
    error: str  # why the last send fell short

    def send(self, bodies: list[str]) -> int:
        """Deliver BODIES (JSON records) in order; how many of the first were acknowledged."""

    def close(self) -> None:
        """Release the connection."""


class MqttSender:
    """Publishes to mqtt://[USER:PASSWORD@]HOST[:PORT]/TOPIC with QoS 1 through Eclipse paho-mqtt,
    whose network thread reconnects on its own."""

    kind = "mqtt"

    def __init__(self, url: str) -> None:
        parts = _parsed(url, "--mqtt")
        self.topic = unquote(parts.path.lstrip("/"))
        if parts.scheme != "mqtt" or not parts.hostname or not self.topic or any(c in url for c in "+#?"):
            raise AdedgeError(f"--mqtt must be mqtt://HOST[:PORT]/TOPIC (a topic without + or #), got {url!r}")
        try:
            import paho.mqtt.client as mqtt
        except ModuleNotFoundError:
            raise AdedgeError("--mqtt needs paho-mqtt: pip install 'adedge[serve]'") from None
        self.target = f"{parts.hostname}:{parts.port or 1883}/{self.topic}"
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"adedge-{secrets.token_hex(4)}")
        if parts.username:
            self.client.username_pw_set(unquote(parts.username), unquote(parts.password or ""))
        self.client.reconnect_delay_set(RETRY_FIRST, RETRY_MAX)
        self.client.connect_async(parts.hostname, parts.port or 1883, keepalive=15)
        self.client.loop_start()
        self.error = ""

    def send(self, bodies: list[str]) -> int:
        """How many of BODIES, from the first, the broker acknowledged."""
        if not self.client.is_connected():
            self.error = "broker unreachable"
            return 0
        sent = [self.client.publish(self.topic, body, qos=1) for body in bodies]
        for count, info in enumerate(sent):
            try:
                info.wait_for_publish(TIMEOUT)
            except (RuntimeError, ValueError) as exc:
                self.error = str(exc)
                return count
            if not info.is_published():
                self.error = f"no acknowledgement within {TIMEOUT:g} s"
                return count
        return len(bodies)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class _Redirects(urllib.request.HTTPRedirectHandler):
    """A redirected POST is not a delivery: Python's client would re-send it as a body-less GET
    (301, 302, 303), whose landing page answers 200 while the verdict is lost. Unless FOLLOW, the 3xx
    stays an error (urlopen raises it); with FOLLOW the same body is POSTed to the new location."""

    def __init__(self, follow: bool) -> None:
        self.follow = follow

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if not self.follow:
            return None
        return urllib.request.Request(newurl, req.data, dict(req.headers), method=req.get_method())


class WebhookSender:
    """POSTs each verdict as JSON to an http(s) URL; a 2xx answer to that POST is delivery. A
    redirect is a failure naming the new location (the verdicts stay queued) unless FOLLOW_REDIRECTS,
    which re-POSTs the same body there."""

    kind = "webhook"

    def __init__(self, url: str, follow_redirects: bool = False) -> None:
        parts = _parsed(url, "--webhook")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise AdedgeError(f"--webhook must be an http:// or https:// URL, got {url!r}")
        self.url = self.target = url
        self.opener = urllib.request.build_opener(_Redirects(follow_redirects))
        self.error = ""

    def send(self, bodies: list[str]) -> int:
        for count, body in enumerate(bodies):
            request = urllib.request.Request(self.url, body.encode(), {"Content-Type": "application/json"}, method="POST")
            try:
                with self.opener.open(request, timeout=TIMEOUT):
                    pass  # raises on anything but 2xx
            except urllib.error.HTTPError as exc:
                self.error = f"HTTP {exc.code} {exc.reason}"
                if 300 <= exc.code < 400:
                    location = printable(exc.headers.get("Location", "no location given"))
                    self.error += f": the endpoint moved to {location}; point --webhook there (or pass --webhook-follow-redirects)"
                return count
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:  # refused, timed out, garbled
                self.error = str(getattr(exc, "reason", exc)) or type(exc).__name__
                return count
        return len(bodies)

    def close(self) -> None:
        pass


class Forwarder:
    """A sender fed from its own outbox by a background thread. put() returns at once."""

    def __init__(self, sender: Sender, folder: Path, log: Callable[[str], None]) -> None:
        self.sender, self.log = sender, log
        key = hashlib.sha256(sender.target.encode()).hexdigest()[:12]
        self.outbox = Outbox(folder / f"{sender.kind}-{key}.sqlite")
        self.delivered = self.unqueued = 0
        self.wake, self.stopping, self.give_up = threading.Event(), threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"adedge-{sender.kind}", daemon=True)
        self.thread.start()

    def put(self, record: dict) -> None:
        """Queue RECORD. An outbox that cannot take it (a full disk) is said once and counted, and
        inspection goes on: the verdict is still on stdout and in predictions.jsonl."""
        try:
            self.outbox.put(json_text(record))
        except sqlite3.Error as exc:
            self.unqueued += 1
            if self.unqueued == 1:
                self.log(f"{self.sender.kind}: cannot queue verdicts in {self.outbox.path} ({exc}); they are not sent")
            return
        self.wake.set()

    def _run(self) -> None:
        delay, down_since = RETRY_FIRST, None
        while not self.give_up.is_set():
            rows = self.outbox.oldest(WINDOW)
            if not rows:
                if self.stopping.is_set():
                    return
                self.wake.wait(0.5)
                self.wake.clear()
                continue
            count = self.sender.send([body for _, body in rows])
            self.outbox.remove([row_id for row_id, _ in rows[:count]])
            self.delivered += count
            if count == len(rows):
                if down_since is not None:
                    self.log(f"{self.sender.kind} {self.sender.target}: delivering again after {time.monotonic() - down_since:.1f} s")
                delay, down_since = RETRY_FIRST, None
                continue
            if down_since is None:
                down_since = time.monotonic()
                self.log(f"{self.sender.kind} {self.sender.target}: {self.sender.error}; verdicts wait in {self.outbox.path}, retrying")
            self.give_up.wait(delay)
            delay = min(2 * delay, RETRY_MAX)

    def close(self, drain_seconds: float = DRAIN_SECONDS) -> int:
        """Deliver what is queued for up to DRAIN_SECONDS (and a send in flight for ABANDON_SECONDS
        more), then stop; returns how many verdicts stay in the outbox for the next start. A send
        still in flight then is left to the daemon thread: its verdicts are not yet removed, so they
        count as queued and go again at the next start (at least once)."""
        self.stopping.set()
        self.wake.set()
        self.thread.join(drain_seconds)
        self.give_up.set()
        self.thread.join(ABANDON_SECONDS)
        if not self.thread.is_alive():
            self.sender.close()
        return len(self.outbox)


def open_forwarders(mqtt: str | None, webhook: str | None, folder: Path | None, log: Callable[[str], None],
                    follow_redirects: bool = False) -> list[Forwarder]:
    """A Forwarder per sink asked for, each with its outbox in FOLDER (default: default_outbox_folder())."""
    senders = ([MqttSender(mqtt)] if mqtt else []) + ([WebhookSender(webhook, follow_redirects)] if webhook else [])
    return [Forwarder(sender, folder or default_outbox_folder(), log) for sender in senders]


def close_forwarders(forwarders: list[Forwarder]) -> list[str]:
    """Deliver what is still queued (for a few seconds each); a line per forwarder of what it
    delivered and what it left for the next start."""
    lines = []
    for forwarder in forwarders:
        left = forwarder.close()
        queued = f"; {left} queued in {forwarder.outbox.path}, sent at the next start" if left else ""
        unqueued = f"; {forwarder.unqueued} could not be queued (see above)" if forwarder.unqueued else ""
        lines.append(f"{forwarder.sender.kind}: {forwarder.delivered} verdicts delivered{queued}{unqueued}")
    return lines
