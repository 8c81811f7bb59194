"""Real peers for the line-integration tests: a Mosquitto broker (Debian's), a persistent QoS 1
subscriber, and a webhook endpoint whose answer can be switched."""

import getpass
import http.server
import json
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

MOSQUITTO = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
TOPIC = "line/3/verdicts"


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return sock.getsockname()[1]


class Broker:
    """Mosquitto on a port of its own, with persistence, so a subscriber's session and the messages
    queued for it survive the broker's restart (as a plant's broker would be set up)."""

    def __init__(self, folder: Path) -> None:
        self.port, self.process = free_port(), None
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

        self.messages: list[dict] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="adedge-test-subscriber", clean_session=False)
        self.client.on_connect = lambda client, *_: client.subscribe(TOPIC, qos=1)
        self.client.on_message = lambda client, userdata, message: self.messages.append(json.loads(message.payload))
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.reconnect_delay_set(0.2, 1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(10), "the subscriber could not subscribe"

    @property
    def frames(self) -> list[int]:
        return [message["frame"] for message in self.messages]

    def wait_for(self, count: int, seconds: float = 30) -> set[int]:
        """The distinct frames received, once COUNT of them are (or SECONDS have passed)."""
        deadline = time.monotonic() + seconds
        while len(set(self.frames)) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return set(self.frames)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Endpoint:
    """A webhook receiver whose answer can be switched: ok, an error status, slow, or a redirect
    (`moved_to`: a 301 there, as an endpoint moved to https answers; GET gets a landing page)."""

    def __init__(self, port: int = 0) -> None:
        self.bodies: list[dict] = []
        self.status, self.delay, self.moved_to, self.gets, self.trickle = 200, 0.0, None, 0, False
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                endpoint.gets += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                if endpoint.trickle:  # an answer that never ends: a byte of a header now and then, never a timeout
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                    while endpoint.trickle:
                        self.wfile.write(b"x")
                        self.wfile.flush()
                        time.sleep(0.5)
                    return
                if endpoint.moved_to:
                    self.send_response(301)
                    self.send_header("Location", endpoint.moved_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
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
        """The frames received in order (repeats included), once COUNT distinct ones are (or SECONDS passed)."""
        deadline = time.monotonic() + seconds
        while len({body["frame"] for body in self.bodies}) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return [body["frame"] for body in self.bodies]
