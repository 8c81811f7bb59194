"""Do MQTT and webhook verdicts survive a 30 s outage of the broker and the endpoint? Does inspection stall?

    .venv/bin/python benchmarks/sink_outage.py [--outage 30] [--before 10] [--after 15]

`adedge predict` streams the MVTec bottle test images (cycled, one process, latency mode) through
a DFM bundle (fitted briefly on synthetic images) with --mqtt to a real Mosquitto broker and
--webhook to a local endpoint. BEFORE seconds into the stream, the broker is stopped and the
endpoint answers 503, for OUTAGE seconds; then both come back and the stream goes on for AFTER
seconds. Counts the verdicts predict printed during the outage and in all, how many distinct ones
the subscriber (a persistent QoS 1 session) and the endpoint received, duplicates, how long after
the outage the last queued one arrived, and the longest gap between two of predict's lines
before, during and after the outage. Writes benchmarks/results/sink_outage.md and .json.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

from common import brief_config, machine_description, write_results

from adedge.data.synthetic import generate_synthetic
from adedge.export.exporter import export_bundle
from adedge.train.trainer import train

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent / "tests"))
from line_peers import TOPIC, Broker, Endpoint, Subscriber  # noqa: E402  (the tests' real peers)

BOTTLE = ROOT.parent.parent / "shared" / "data" / "mvtec" / "bottle" / "test"


def longest_gap(stamps: list[float]) -> float:
    return max((b - a for a, b in zip(stamps, stamps[1:])), default=0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--outage", type=float, default=30.0)
    parser.add_argument("--before", type=float, default=10.0)
    parser.add_argument("--after", type=float, default=15.0)
    args = parser.parse_args()
    images = sorted(BOTTLE.glob("*/*.png"))
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        data = generate_synthetic(work / "data", train=6, test_good=0, per_defect=0)
        train(brief_config(data, work / "run", "dfm"))
        export_bundle(work / "run", work / "bundle")
        (work / "broker").mkdir()
        broker = Broker(work / "broker")
        broker.start()
        subscriber, endpoint = Subscriber(broker.port), Endpoint()
        frames = int((args.before + args.outage + args.after) * 40)  # more than the stream can do in that time
        command = [sys.executable, "-m", "adedge.cli", "predict", str(work / "bundle"), *map(str, (images * (frames // len(images) + 1))[:frames]),
                   "--mqtt", f"mqtt://127.0.0.1:{broker.port}/{TOPIC}", "--webhook", endpoint.url, "--outbox", str(work / "outbox")]
        predict = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines: list[tuple[float, dict]] = []
        reader = threading.Thread(target=lambda: lines.extend((time.time(), json.loads(line)) for line in predict.stdout))
        reader.start()
        while not lines:
            time.sleep(0.05)
        started = time.time()
        time.sleep(args.before)
        down = time.time()
        broker.stop()
        endpoint.status = 503
        time.sleep(args.outage)
        up = time.time()
        broker.start()
        endpoint.status = 200
        time.sleep(args.after)
        predict.terminate()  # SIGTERM: predict finishes the frames in flight and drains its outboxes
        predict.wait(timeout=120)
        reader.join()
        err = predict.stderr.read()
        published = [record for _, record in lines]
        during = [record for stamp, record in lines if down <= stamp < up]
        total = len(published)
        mqtt_frames = subscriber.wait_for(total, 60)
        endpoint.wait_for(total, 60)
        last_arrival = time.time()
        subscriber.close()
        endpoint.server.shutdown()
        broker.stop()
    runs = {record["run"] for record in published}
    webhook_frames = [body["frame"] for body in endpoint.bodies]
    stamps = [stamp for stamp, _ in lines]
    gaps = {
        "before": longest_gap([s for s in stamps if started <= s < down]),
        "during": longest_gap([s for s in stamps if down <= s < up]),
        "after": longest_gap([s for s in stamps if s >= up]),
    }
    record = {
        "machine": machine_description(), "outage_s": args.outage, "published": total, "published_during_outage": len(during),
        "mqtt_received_distinct": len(mqtt_frames & {r["frame"] for r in published}), "mqtt_messages": len(subscriber.messages),
        "webhook_received_distinct": len(set(webhook_frames)), "webhook_posts": len(webhook_frames),
        "webhook_in_order": webhook_frames == sorted(webhook_frames), "runs": len(runs),
        "longest_gap_s": {k: round(v, 3) for k, v in gaps.items()}, "predict_exit": predict.returncode, "predict_stderr": err[-3000:],
        "seconds_from_recovery_to_check": round(last_arrival - up, 1),
    }
    lines_md = [
        f"# Verdicts through a {args.outage:.0f} s outage of the MQTT broker and the webhook endpoint",
        "",
        f"Machine: {machine_description()}. One run: `adedge predict` (latency mode, DFM efficientnet_lite1 fp32, 900x900 bottle PNGs) "
        f"with --mqtt (Mosquitto, QoS 1) and --webhook; at {args.before:.0f} s the broker stopped and the endpoint answered 503, for {args.outage:.0f} s.",
        "",
        "| | MQTT | webhook |",
        "|---|---|---|",
        f"| verdicts printed by predict | {total} | {total} |",
        f"| of them during the outage | {len(during)} | {len(during)} |",
        f"| distinct verdicts received | {record['mqtt_received_distinct']} | {record['webhook_received_distinct']} |",
        f"| messages / POSTs received (duplicates included) | {record['mqtt_messages']} | {record['webhook_posts']} |",
        "",
        f"Webhook deliveries in frame order: {record['webhook_in_order']}. Longest gap between two of predict's lines: "
        f"{gaps['before']:.3f} s before the outage, {gaps['during']:.3f} s during it, {gaps['after']:.3f} s after it. predict exit code {predict.returncode}.",
        "predict's stderr, sinks: " + " / ".join(line for line in err.splitlines() if line.startswith(("mqtt", "webhook"))),
    ]
    write_results("sink_outage", record, lines_md)
    print(datetime.now().isoformat(timespec="seconds"))


if __name__ == "__main__":
    main()
