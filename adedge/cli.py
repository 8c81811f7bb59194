"""The `adedge` command: thin wrappers that parse, call the library and print.

Training and export import torch lazily, so predict/eval/bench run on a torch-free install.
"""

import contextlib
import functools
import math
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import track
from rich.table import Table

from adedge import defaults
from adedge.choices import Backend, Format, Layout, Mode, Overlays, Precision, Resize, check_export
from adedge.errors import AdedgeError, printable
from adedge.fileio import check_output_file, check_outside, write_json
from adedge.formats import parse_image_size
from adedge.train.models import MODEL_NAMES, check_model_name

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Train, export and run visual anomaly detectors.")
out_console = Console()
err_console = Console(stderr=True)


PROGRESS_EVERY = 30.0  # seconds between progress lines where stderr is a log, not a terminal
PROGRESS_PREFIX = "progress:"  # starts each of those lines, so a log reader tells them from warnings and errors


def _progress(items, description: str):
    """A progress bar on a terminal; where stderr is a log file or a pipe, a line every
    PROGRESS_EVERY seconds and one when the step is done."""
    if err_console.is_terminal:
        return track(items, description=description, console=err_console, transient=True)
    return _logged(items, description)


def _logged(items, description: str):
    items = list(items)
    started = last = time.monotonic()
    for count, item in enumerate(items, 1):
        yield item
        if time.monotonic() - last >= PROGRESS_EVERY:
            last = time.monotonic()
            _stage(f"{description}: {count}/{len(items)} after {last - started:.0f} s")
    _stage(f"{description}: done in {time.monotonic() - started:.1f} s")


def _stage(line: str) -> None:
    """A step done (a training stage, a long loop), on stderr where no progress bar shows it (a log, a pipe)."""
    if not err_console.is_terminal:
        err_console.print(f"{PROGRESS_PREFIX} {_safe(line)}", highlight=False, soft_wrap=True)


def _safe(text: object) -> str:
    """Outside text (a path, an endpoint's answer, a library's message) for a rich line: control
    characters escaped, rich markup too."""
    return escape(printable(text))


def _error_line(message: str) -> None:
    """MESSAGE as one line on stderr: no terminal colour codes or line breaks a library put in it."""
    message = " ".join(re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", message).split())
    err_console.print(f"[bold red]error:[/] {_safe(message)}", highlight=False, soft_wrap=True)


def user_errors(command: Callable) -> Callable:
    """Turn the mistakes a user can make into one red line on stderr and exit code 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (AdedgeError, OSError) as exc:  # OSError: permission denied, disk full, read-only folder
            _error_line(str(exc))
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err_console.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper


def _table(title: str, values: dict) -> Table:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in values.items():
        if isinstance(value, float):
            table.add_row(key, f"{value:.4f}" if math.isfinite(value) else "n/a")
        else:
            table.add_row(key, str(value))
    return table


def _write_json(path: Path | None, values: dict) -> None:
    if path is not None:
        write_json(path, values)


def _needs_training_extra(error: ModuleNotFoundError) -> AdedgeError:
    return AdedgeError(f"this command needs adedge's training extra ({error.name} is not installed): pip install 'adedge[train]'")


def _parse_params(params: list[str]) -> dict[str, str]:
    values = {}
    for item in params:
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise AdedgeError(f"--param takes KEY=VALUE, got {item!r}")
        values[key.strip().replace("-", "_")] = value.strip()
    return values


@app.command()
@user_errors
def train(
    data: Path = typer.Option(..., help="MVTec category folder, MVTec root (with --category) or folder of good images."),
    out: Path = typer.Option(..., help="Run folder to write (checkpoint.pt + run.json)."),
    model: str = typer.Option("dfm", help=f"Model: {', '.join(MODEL_NAMES)}."),
    category: str | None = typer.Option(None, help="Category under an MVTec root."),
    backbone: str = typer.Option(defaults.BACKBONE, help="efficientnet_lite1, efficientnet_lite0 (faster), efficientnet_lite2, resnet18 or wide_resnet50_2."),
    weights: str | None = typer.Option(None, help="Backbone weight file (.pth); 'random' for untrained. Default: published ImageNet weights."),
    image_size: str | None = typer.Option(None, metavar="N|H,W", help="Size in pixels the graph resizes every frame to: N (square), H,W or HxW, each a multiple of 32 (default: about the model's size squared, in the training images' aspect)."),
    resize: Resize = typer.Option(defaults.RESIZE, help="How frames are resized: antialias (bilinear, averaging when shrinking) or bilinear."),
    seed: int = typer.Option(defaults.SEED, help="Seed for the hold-back split and every RNG."),
    val_data: Path | None = typer.Option(None, help="Labelled folder for F1-optimal thresholds (default: a false-reject budget on out-of-fold scores of the good training images)."),
    stages: str | None = typer.Option(None, help="Comma-separated backbone stages (default: the model's)."),
    param: list[str] = typer.Option([], "--param", "-p", help="A model setting KEY=VALUE (repeatable), e.g. -p meta_epochs=8; an unknown key lists them all."),
    false_reject: float = typer.Option(defaults.FALSE_REJECT, help="The share of good parts the NG threshold may reject (0.01: 1 %), estimated on out-of-fold training images."),
) -> None:
    """Fit a detector on good images and calibrate its verdicts on them, out of fold."""
    check_model_name(model)  # before torch loads
    try:
        from adedge.train.calibration import describe_calibration
        from adedge.train.trainer import TrainConfig
        from adedge.train.trainer import train as run_training
    except ModuleNotFoundError as exc:
        raise _needs_training_extra(exc) from None

    config = TrainConfig(
        data, out, model, category, backbone, weights, None if image_size is None else parse_image_size(image_size), seed, val_data,
        stages=tuple(stages.split(",")) if stages else None, resize=resize, settings=_parse_params(param), false_reject=false_reject,
    )
    info = run_training(config, _progress, _stage)
    out_console.print(
        f"trained {info.model} ({info.backbone}) on {info.dataset.fit_images} images of {info.dataset.category} "
        f"in {info.train_seconds:.1f} s; calibration: {info.calibration.method}; run: {out}", highlight=False, soft_wrap=True,
    )
    for line, plain in describe_calibration(info.calibration, None if val_data else false_reject):
        (out_console if plain else err_console).print(line if plain else f"[yellow]warning:[/] {_safe(line)}", highlight=False, soft_wrap=True)


@app.command("export")
@user_errors
def export_command(
    run: Path = typer.Argument(..., help="Run folder written by `adedge train`."),
    out: Path = typer.Option(..., help="Bundle folder to write."),
    format: Format = typer.Option(Format.OPENVINO, help="The model file: OpenVINO IR or ONNX."),
    precision: Precision = typer.Option(Precision.FP32, help="fp32; fp16 (compressed weights); bf16 (bf16 arithmetic); int8 (NNCF); auto (the backbone in bf16 where the CPU has bf16 units, the rest in f32)."),
    max_drop: float = typer.Option(defaults.MAX_DROP, help="int8: the most image or pixel AUROC quantisation may cost on validation images (held-back training images and synthetic defects); a larger value also lets it move that share of their verdicts (5 % at least)."),
    sign_key: Path | None = typer.Option(None, help="Key file (at least 16 bytes) to sign the bundle with (adedge.sig)."),
    layout: Layout = typer.Option(Layout.BUNDLE, help="bundle (a folder); triton or ovms: add the model to the model repository --out, as those servers load it."),
    name: str | None = typer.Option(None, help="Model name in a repository (default: CATEGORY_MODEL, e.g. bottle_dfm)."),
) -> None:
    """Export a trained run as one inference graph (the bundle), or into a Triton or OVMS model repository."""
    check_export(format, precision, layout)  # before torch loads
    try:
        from adedge.export.exporter import export_bundle
        from adedge.export.repository import VERSION, export_folders
    except ModuleNotFoundError as exc:
        raise _needs_training_extra(exc) from None

    with err_console.status(f"exporting {run} to {format} {precision}"):
        metadata = export_bundle(run, out, format, precision, max_drop, sign_key=sign_key, layout=layout, name=name)
    _, folder = export_folders(out, layout, name, metadata)
    size = sum((folder / file).stat().st_size for file in metadata.files) / 1e6
    signed = ", signed" if sign_key else ""
    out_console.print(f"exported {metadata.model} as {format} {precision} ({size:.1f} MB{signed}) to {folder}")
    if layout != "bundle":
        out_console.print(f"{layout} model repository: {out} (model {folder.parent.name}, version {VERSION}); see the README to serve it")
    if metadata.quantization is not None:
        q = metadata.quantization
        out_console.print(f"int8: {q.mode} quantised; AUROC points lost on validation images: {100 * q.attempts[-1]['drop']:.2f}")


def _outside_inputs(out: Path, bundle: Path) -> None:
    """An output of predict, eval or bench goes neither among BUNDLE's files nor into any bundle."""
    from adedge.bundle import METADATA_FILE

    check_outside(out, bundle, "the bundle")
    if (out / METADATA_FILE).is_file():
        raise AdedgeError(f"{out} is a bundle (it holds {METADATA_FILE}): write the output somewhere else")


def _load(bundle: Path, backend: str, key: Path | None, mode: str = "latency", threshold: float | None = None, check: float | None = None):
    from adedge.bundle import read_key
    from adedge.runtime import Model

    return Model.load(bundle, backend, mode=mode, key=read_key(key) if key else None, threshold=threshold, check=check)


MQTT_HELP = "Also publish each verdict as JSON to mqtt://[USER:PASSWORD@]HOST[:PORT]/TOPIC, QoS 1; queued on disk while the broker is down."
WEBHOOK_HELP = "Also POST each verdict as JSON to this http(s) URL, retried with back-off; queued on disk while it fails."
FOLLOW_HELP = "--webhook: when the endpoint answers a redirect, POST the verdict again to the new location (default: a redirect is a failure, named in a log line, and the verdicts stay queued)."
OUTBOX_HELP = "Folder of the on-disk queues of --mqtt and --webhook (default: ~/.local/state/adedge/outbox)."


def _warn(what: str, text: str) -> None:
    """One yellow-headed line on stderr: a frame skipped, a drift alarm, an overlay or the summary not written."""
    style = "bold yellow" if what == "drift alarm" else "yellow"
    err_console.print(f"[{style}]{what}[/] {_safe(text)}", highlight=False, soft_wrap=True)


def _log_line(line: str) -> None:
    """A yellow line on stderr: a source or a sink going away and coming back."""
    err_console.print(f"[yellow]{_safe(line)}[/]", highlight=False, soft_wrap=True)


def _close_forwarders(forwarders: list) -> None:
    from adedge.runtime.line.delivery import close_forwarders

    for line in close_forwarders(forwarders):
        err_console.print(_safe(line), highlight=False, soft_wrap=True)


THRESHOLD_HELP = "NG above this 0..1 score (default: the bundle's, 0.5 = the false-reject budget's threshold); lower catches more."
CHECK_HELP = "CHECK (for a person to look at) above this score and up to the threshold (default: the bundle's band; the threshold: no band)."


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event):
    """Ctrl-C or SIGTERM sets STOP, so a stream ends cleanly with every result written; a second
    Ctrl-C interrupts at once."""

    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        err_console.print(f"{signal.Signals(signum).name}: finishing the frames in flight (Ctrl-C again to abort)")

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


@app.command()
@user_errors
def predict(
    bundle: Path = typer.Argument(..., help="Bundle folder."),
    source: list[str] = typer.Argument(..., help="Image files, folders or globs; or one video file, camera index (0) or stream URL."),
    out: Path | None = typer.Option(None, help="Folder for predictions.jsonl, summary.json and overlay PNGs."),
    watch: bool = typer.Option(False, help="Keep inspecting new images as they arrive in the SOURCE folder."),
    settle: float = typer.Option(defaults.SETTLE_SECONDS, "--settle", metavar="SECONDS", help="--watch: how long a file must stay unchanged (and be whole) before it is inspected."),
    reconnect_timeout: float = typer.Option(defaults.RECONNECT_SECONDS, metavar="SECONDS", help="Camera or stream: seconds without a frame, reconnecting meanwhile, before giving up."),
    mode: Mode = typer.Option(Mode.LATENCY, help="latency: one frame at a time; throughput: several requests in flight."),
    overlays: Overlays = typer.Option(defaults.OVERLAYS, help="Overlay PNGs for: ng (anomalous frames), all, none."),
    backend: Backend = typer.Option(Backend.OPENVINO, help="The inference engine."),
    key: Path | None = typer.Option(None, help="Key file: refuse the bundle unless it was signed with this key."),
    threshold: float | None = typer.Option(None, help=THRESHOLD_HELP),
    check: float | None = typer.Option(None, "--check", "--warn", help=CHECK_HELP),
    mqtt: str | None = typer.Option(None, metavar="URL", help=MQTT_HELP),
    webhook: str | None = typer.Option(None, metavar="URL", help=WEBHOOK_HELP),
    webhook_follow_redirects: bool = typer.Option(False, help=FOLLOW_HELP),
    outbox: Path | None = typer.Option(None, metavar="DIR", help=OUTBOX_HELP),
) -> None:
    """Inspect a stream of frames: a JSON line per frame on stdout, overlays, a summary at the end."""
    from adedge.runtime import open_source
    from adedge.runtime.line.delivery import open_forwarders
    from adedge.runtime.line.inspect import inspect_line
    from adedge.runtime.line.sinks import StreamWriter

    frames = open_source(  # first: a wrong source or option is named before the model compiles
        source, watch, settle, reconnect_timeout, log=_log_line,
    )
    if out is not None:
        _outside_inputs(out, bundle)
        if watch:
            check_outside(out, source[0], "the watched folder")
    forwarders = open_forwarders(mqtt, webhook, outbox, _log_line, webhook_follow_redirects)
    try:
        model = _load(bundle, backend, key, mode, threshold, check)
        if (off := model.point.drift_alarm_off()) is not None:
            _log_line(off)
        stop = threading.Event()
        with _stop_on_signals(stop):
            summary = inspect_line(model, frames, StreamWriter(out, model.name, overlays, sys.stdout), forwarders, stop, _warn)
    finally:
        _close_forwarders(forwarders)
    figures = summary.as_dict()
    err_console.print(
        f"{figures['frames']} frames: {figures['ok']} OK, {figures['check']} CHECK, {figures['ng']} NG, {figures['failed']} failed, "
        f"{figures['drift_alarms']} drift alarm(s); latency p50 "
        f"{figures['latency_p50_ms']} ms, p99 {figures['latency_p99_ms']} ms; {figures['fps']} frames/s", highlight=False, soft_wrap=True
    )
    if summary.failed:
        raise AdedgeError(f"{summary.failed} of {figures['frames']} frames could not be inspected (see above)")


@app.command("eval")
@user_errors
def eval_command(
    bundle: Path = typer.Argument(..., help="Bundle folder."),
    data: Path = typer.Option(..., help="Labelled folder (MVTec category or root with --category)."),
    category: str | None = typer.Option(None, help="Category under an MVTec root."),
    json_file: Path | None = typer.Option(None, "--json", help="Also write the metrics to this JSON file."),
    backend: Backend = typer.Option(Backend.OPENVINO, help="The inference engine."),
    key: Path | None = typer.Option(None, help="Key file: refuse the bundle unless it was signed with this key."),
    threshold: float | None = typer.Option(None, help=THRESHOLD_HELP),
    check: float | None = typer.Option(None, "--check", "--warn", help=CHECK_HELP),
    report: Path | None = typer.Option(None, help="Also write report.html (curves, histograms, per-defect table, worst cases) into this folder."),
) -> None:
    """AUROC, F1 and PRO of a bundle on labelled images, and at its threshold: good parts rejected, defects missed."""
    from adedge.runtime.evaluation.evaluate import run_evaluation
    from adedge.runtime.evaluation.report import check_report_folder, write_report

    if report is not None:
        _outside_inputs(report, bundle)
        check_report_folder(report)
    if json_file is not None:
        check_output_file(json_file)
        _outside_inputs(json_file, bundle)
    model = _load(bundle, backend, key, threshold=threshold, check=check)
    evaluation = run_evaluation(model, data, category, track=_progress)
    title = f"{bundle} on {data / category if category else data}"
    out_console.print(_table(title, evaluation.metrics))
    _write_json(json_file, evaluation.metrics)
    if report is not None:
        path = write_report(evaluation, report, f"{model.metadata.model} bundle {title}")
        out_console.print(f"report: {_safe(str(path))}")


@app.command("bench")
@user_errors
def bench_command(
    bundle: Path = typer.Argument(..., help="Bundle folder."),
    backend: Backend = typer.Option(Backend.OPENVINO, help="The inference engine."),
    batch: int = typer.Option(1, min=1, max=256, help="Images per inference call."),
    iterations: int = typer.Option(200, min=1, help="Timed calls after the warm-up."),
    json_file: Path | None = typer.Option(None, "--json", help="Also write the figures to this JSON file."),
    key: Path | None = typer.Option(None, help="Key file: refuse the bundle unless it was signed with this key."),
) -> None:
    """Latency (p50/p90/p99 ms) and throughput of a bundle's graph on frames of the model's size."""
    from adedge.runtime.evaluation.bench import bench

    if json_file is not None:
        check_output_file(json_file)
        _outside_inputs(json_file, bundle)
    model = _load(bundle, backend, key)
    with err_console.status(f"timing {iterations} calls at batch {batch}"):
        figures = bench(model, batch, iterations)
    out_console.print(_table(f"{bundle} on {backend}", figures))
    _write_json(json_file, figures)


@app.command()
@user_errors
def serve(
    bundles: list[str] = typer.Argument(..., metavar="BUNDLE...", help="Bundle folders, each as BUNDLE or NAME=BUNDLE (a repository's NAME/VERSION folder keeps its name and version)."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on: 127.0.0.1 is this PC only; 0.0.0.0 every network."),
    port: int = typer.Option(8000, min=0, max=65535, help="HTTP port (0: any free port, printed at start)."),
    grpc_port: int | None = typer.Option(None, min=0, max=65535, help="Also serve gRPC on this port of --host (Triton's is 8001; 0: any free port)."),
    api_key: str | None = typer.Option(None, envvar="ADEDGE_API_KEY", help="Require this key (16+ characters) as 'Authorization: Bearer KEY' or 'x-api-key'; better set as ADEDGE_API_KEY, which ps does not show."),
    max_body_mb: float = typer.Option(float(defaults.MAX_BODY_MB), help="Largest request body accepted (MiB); larger ones get HTTP 413."),
    mode: Mode = typer.Option(Mode.THROUGHPUT, help="throughput: concurrent requests run side by side; latency: each request on all cores."),
    backend: Backend = typer.Option(Backend.OPENVINO, help="The inference engine."),
    key: Path | None = typer.Option(None, help="Key file: refuse bundles unless signed with this key."),
    threshold: float | None = typer.Option(None, help=THRESHOLD_HELP),
    check: float | None = typer.Option(None, "--check", "--warn", help=CHECK_HELP),
    mqtt: str | None = typer.Option(None, metavar="URL", help=MQTT_HELP),
    webhook: str | None = typer.Option(None, metavar="URL", help=WEBHOOK_HELP),
    webhook_follow_redirects: bool = typer.Option(False, help=FOLLOW_HELP),
    outbox: Path | None = typer.Option(None, metavar="DIR", help=OUTBOX_HELP),
) -> None:
    """Serve bundles over the Open Inference Protocol (KServe v2, HTTP), as Triton and OVMS do, until SIGTERM."""
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")  # read once, when gRPC loads: its C core would print its own lines (a port in use) beside ours
    try:
        from adedge.runtime.serving import server
    except ModuleNotFoundError as exc:
        raise AdedgeError(f"adedge serve needs the serve extra ({exc.name} is missing): pip install 'adedge[serve]'") from None
    from adedge.bundle import read_key
    from adedge.runtime.line.delivery import open_forwarders

    server.check_options(api_key, max_body_mb)
    signing_key = read_key(key) if key else None
    served = server.served_bundles(bundles, signing_key)
    sock = server.listen(host, port)
    address = f"http://{host}:{sock.getsockname()[1]}"

    def ready(models, grpc_bound: int | None) -> None:
        for model in models:
            m = model.metadata
            out_console.print(f"serving {model.name} version {model.version} ({m.model}, {m.format} {m.precision}): {address}/v2/models/{model.name}/infer", highlight=False, soft_wrap=True)
            if (off := model.point.drift_alarm_off()) is not None:
                _log_line(f"{model.name}: {off}")
        guard = "API key required" if api_key else "no API key"
        grpc_line = f" and gRPC on {host}:{grpc_bound}" if grpc_bound else ""
        out_console.print(f"listening on {address}{grpc_line} (Open Inference Protocol v2; {guard}); SIGTERM or Ctrl-C stops", highlight=False, soft_wrap=True)
        if host in server.WILDCARDS:
            err_console.print(f"[yellow]warning:[/] listening on {host}: every network of this PC", highlight=False)
        if api_key is None and host not in ("127.0.0.1", "localhost", "::1"):
            err_console.print(f"[yellow]warning:[/] {_safe(host)} without --api-key: anyone who can reach this PC can use the models", highlight=False)
        sys.stdout.flush()

    forwarders = open_forwarders(mqtt, webhook, outbox, _log_line, webhook_follow_redirects)
    try:
        server.serve(served, sock, api_key, max_body_mb, backend, None, mode, ready, forwarders, grpc_port, threshold, check, signing_key)
    finally:
        _close_forwarders(forwarders)
    out_console.print("stopped")


@app.command()
@user_errors
def demo(
    out: Path = typer.Option(Path("demo-output"), help="Folder for the synthetic data, runs, bundles and overlays."),
    seed: int = typer.Option(0, help="Seed of the synthetic dataset."),
) -> None:
    """End to end on synthetic parts: generate, train DFM and PatchCore, export OpenVINO, eval, bench, overlays."""
    try:
        from adedge.demo import COLUMNS, DEMO_SIZE, run_demo
    except ModuleNotFoundError as exc:
        raise _needs_training_extra(exc) from None

    rows = run_demo(out, seed, _progress, lambda line: out_console.print(_safe(line), highlight=False, soft_wrap=True), err_console.status)
    summary = Table(title=f"adedge demo: synthetic plates, {defaults.BACKBONE}, OpenVINO f32, {DEMO_SIZE}x{DEMO_SIZE}")
    for column in COLUMNS:
        summary.add_column(column, justify="right")
    for row in rows:
        summary.add_row(*row)
    out_console.print(summary)
    out_console.print(f"overlays of every fifth test image: {out / 'predictions'}")


def main(argv: list[str] | None = None) -> int:
    """The console entry point. Every failure ends in one line on stderr: exit 2 for a mistake a user
    or the environment can cause (a bad option included), 1 for a bug in adedge (ADEDGE_DEBUG=1
    shows its traceback)."""
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError

    try:
        return app(args=argv, prog_name="adedge", standalone_mode=False) or 0
    except NoArgsIsHelpError:
        return app(args=[*(argv if argv is not None else sys.argv[1:]), "--help"], prog_name="adedge", standalone_mode=False) or 0
    except (UsageError, ClickException) as exc:
        where = f" (see: {exc.ctx.command_path} --help)" if getattr(exc, "ctx", None) is not None else ""
        _error_line(exc.format_message() + where)
        return 2
    except (KeyboardInterrupt, typer.Abort):
        err_console.print("interrupted")
        return 130
    except Exception as exc:  # noqa: BLE001 - the last resort: a bug still ends in one line
        if os.environ.get("ADEDGE_DEBUG") == "1":
            raise
        _error_line(f"internal error, a bug in adedge: {type(exc).__name__}: {str(exc)[:300]} "
                    "(run again with ADEDGE_DEBUG=1 for the traceback, and report it)")
        return 1


if __name__ == "__main__":
    sys.exit(main())
