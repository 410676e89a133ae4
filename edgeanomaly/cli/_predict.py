"""``edgeanomaly predict``: run a bundle on images, folders, globs, videos or a camera (no torch)."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any, Iterator

import click

from edgeanomaly import registry
from edgeanomaly._threads import deferring_interrupts, exit_status, raise_deferred
from edgeanomaly.bundle import write_bytes_atomic
from edgeanomaly.cli._common import (backend_choice, exact_option, friendly_errors, precision_choice, progress, this_command_with,
                                     trust_option, trusted_keys)
from edgeanomaly.cli._outdir import FolderLock, completed_lines
from edgeanomaly.cli._remote import check_remote, remote_options
from edgeanomaly.data import IMAGE_EXTENSIONS, is_image_file, read_image
from edgeanomaly.errors import ImageReadError
from edgeanomaly.runtime import check_image_size, load, overlay

#: Exit code when the run finished but some inputs could not be scored (corrupt files...).
EXIT_SOME_FAILED = 3
#: From this many image files on, ``predict`` chooses the backend by measurement: it costs
#: under a second (docs/BENCHMARKS.md, "Backend choice under load"), a small share of a run
#: of 100 images of 15-40 ms each; for a few files it would cost more than it could save.
MEASURE_FROM_FILES = 100

_GLOB_CHARS = set("*?[")


def _count_suffixes(paths: list[Path]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for p in paths:
        counts[p.suffix.lower() or p.name] = counts.get(p.suffix.lower() or p.name, 0) + 1
    return counts


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    import numpy as np

    return round(float(np.percentile(values, q)), 3)


def _an_input(p: Path) -> bool:
    """A file, or a link to one that is gone (an unmounted share): scored, or failed and counted
    as such, never left out in silence."""
    return p.is_file() or (p.is_symlink() and not p.exists())


def _resolve_source(source: str, watch: bool) -> tuple[str, Any]:
    """-> (kind, value): ("camera", 0), ("watch", dir), ("files", [paths]), ("video", path)."""
    if source.strip().isdigit() and not Path(source).exists():
        return "camera", int(source)
    path = Path(source)
    if path.is_dir():
        if watch:
            return "watch", path
        # Recursive: an MVTec test split keeps its images in one subfolder per defect type.
        return "files", sorted(p for p in path.rglob("*") if _an_input(p) and is_image_file(p))
    if watch:
        raise click.BadParameter(f"--watch needs a folder, got {source}", param_hint="SOURCE")
    if path.is_file():
        return ("files", [path]) if is_image_file(path) else ("video", path)
    if _GLOB_CHARS & set(source):
        import glob

        matches = sorted(Path(p) for p in glob.glob(source, recursive=True))
        return "files", [p for p in matches if _an_input(p) and is_image_file(p)]
    if not path.exists():
        raise click.BadParameter(f"{source} does not exist (no such file or folder)", param_hint="SOURCE")
    raise click.BadParameter(
        f"{source} is not an image, a folder, a glob pattern, a video file or a camera index",
        param_hint="SOURCE",
    )


def _not_images(source: str, kind: str) -> list[Path]:
    """The files of a folder (or glob) that are not images: reported, never skipped in silence."""
    if kind != "files":
        return []
    path = Path(source)
    if path.is_dir():
        found = (p for p in path.rglob("*") if _an_input(p))
    elif _GLOB_CHARS & set(source) and not path.is_file():
        import glob

        found = (Path(p) for p in glob.glob(source, recursive=True) if _an_input(Path(p)))
    else:
        return []
    return sorted(p for p in found if not is_image_file(p) and not p.name.startswith("."))


def _no_images_message(source: str) -> str:
    """What was looked for, and a glob to try instead."""
    looked = ", ".join(IMAGE_EXTENSIONS)
    if Path(source).is_dir():
        return (f"No image files found in {source} or its subfolders (looked for {looked}). "
                f"Pass the folder that holds the images, or a glob such as \"{Path(source) / '**' / '*.png'}\"")
    return f"No image files match {source} (looked for {looked}). Try a recursive glob such as \"parts/**/*.png\""


def _check_outputs(out: Path | None, overwrite: bool, resume: bool = False) -> None:
    """Before any work: refuse to replace the results of an earlier run unless asked."""
    if out is None or overwrite or resume:
        return
    earlier = [p for p in (out / "predictions.jsonl", out / "overlays") if p.exists()]
    if earlier:
        raise click.ClickException(
            f"{out} already holds the results of an earlier run ({', '.join(p.name for p in earlier)}); "
            "pass --resume to finish an interrupted run, --overwrite to replace them, or choose another --out"
        )


def _overlay_root(kind: str, value: Any) -> Path | None:
    """The folder whose tree the overlays mirror: the inputs' common folder (or the watched one)."""
    import os

    if kind == "watch":
        return Path(value).resolve()
    if kind == "files" and value:
        return Path(os.path.commonpath([str(Path(p).resolve().parent) for p in value]))
    return None


#: predictions.jsonl is flushed to the OS after every line (a killed process loses nothing it
#: printed) and fsynced at most this often, and at the end (a power cut loses at most ~1 s).
FSYNC_EVERY_S = 1.0


def _whole_result() -> contextlib.AbstractContextManager[list[int]]:
    """Ctrl-C or SIGTERM while a result line is written (the file, then stdout) and counted
    waits until it is (:func:`~edgeanomaly._threads.raise_deferred` raises it after): the
    summary, the file and stdout then agree, and ``--resume`` neither skips nor rescores it.
    A second one stops at once, where a full pipe nobody reads holds the line."""
    return deferring_interrupts(repeated_raises=True)


class _Report:
    """Writes result lines (stdout and optionally DIR/predictions.jsonl) and keeps the summary.

    ``done``: the result lines of an interrupted run that ``--resume`` keeps; they are
    rewritten first (an earlier summary, error lines and a torn last line are dropped) and
    count in the summary.
    """

    def __init__(self, as_json: bool, out: Path | None, save_overlays: bool, root: Path | None = None,
                 done: list[dict[str, Any]] | None = None) -> None:
        self.as_json = as_json
        self.out = out
        self.overlay_dir = out / "overlays" if (out is not None and save_overlays) else None
        self.root = root
        self.written: set[Path] = set()
        self.file = None
        done = done or []
        self._synced = time.monotonic()
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            target = out / "predictions.jsonl"
            if done:
                write_bytes_atomic(target, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in done).encode("utf-8"))
            self.file = target.open("a" if done else "w", encoding="utf-8")
        if self.overlay_dir is not None:
            self.overlay_dir.mkdir(parents=True, exist_ok=True)
        self.not_images: list[Path] = []
        self.n_resumed = len(done)
        self.n_ok = len(done)
        self.n_failed = 0
        self.n_anomalous = sum(int(bool(r.get("label"))) for r in done)
        self.totals: list[float] = []
        self.stages: dict[str, list[float]] = {}

    def _emit(self, record: dict[str, Any], human: str) -> None:
        line = json.dumps(record, ensure_ascii=False)
        if self.file is not None:  # the file first: a line printed is a line kept
            self.file.write(line + "\n")
            self.file.flush()
            if time.monotonic() - self._synced >= FSYNC_EVERY_S:
                os.fsync(self.file.fileno())
                self._synced = time.monotonic()
        click.echo(line if self.as_json else human)

    def ok(self, key: str, name: Any, prediction: Any, image: Any = None, color: str = "RGB") -> None:
        record = prediction.to_dict()
        record.pop("source", None)
        record = {key: name, **record}
        if self.overlay_dir is not None and image is not None:
            import cv2

            target = self._overlay_target(key, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            vis = overlay(image, prediction, color=color)
            cv2.imwrite(str(target), vis if color == "BGR" else cv2.cvtColor(vis, cv2.COLOR_RGB2BGR))
            record["overlay"] = str(target)
        label = "ANOMALOUS" if prediction.label else "normal"
        total = prediction.timings.get("total", float("nan"))
        with _whole_result() as signums:
            self._emit(record, f"{name}\t{label}\tscore={prediction.score:.4f}\t{total:.1f} ms")
            self.n_ok += 1
            self.n_anomalous += int(prediction.label)
            for stage, ms in prediction.timings.items():
                self.stages.setdefault(stage, []).append(ms)
        raise_deferred(signums)

    def _overlay_target(self, key: str, name: Any) -> Path:
        """One file per input: the input's path below the common folder, as .png (never reused)."""
        assert self.overlay_dir is not None
        if key != "path":
            return self.overlay_dir / f"frame_{int(name):06d}.png"
        path = Path(str(name))
        rel = Path(path.name)
        if self.root is not None:
            try:
                rel = path.resolve().relative_to(self.root)
            except ValueError:  # a watched file outside the folder (a symlink): keep its name
                pass
        target = self.overlay_dir / rel.with_suffix(".png")
        if target in self.written:  # part.png and part.jpg side by side
            target = self.overlay_dir / rel.parent / (rel.name + ".png")
        self.written.add(target)
        return target

    def failed(self, key: str, name: Any, error: Exception, count: int = 1) -> None:
        """One input (or ``count`` video frames, e.g. a truncated tail) that could not be scored."""
        record: dict[str, Any] = {key: name if key == "frame" else str(name), "error": str(error)}
        if count != 1:
            record["frames"] = count
        with _whole_result() as signums:
            self._emit(record, f"{name}\tERROR\t{error}")
            self.n_failed += count
        raise_deferred(signums)

    def summary(self, info: dict[str, Any], wall_s: float, not_scored: int | None = None) -> dict[str, Any]:
        """The summary line (stdout, and the file); ``not_scored``: the inputs a Ctrl-C left."""
        n = self.n_ok + self.n_failed
        out = {
            "summary": {
                **({"interrupted": True, "not_scored": not_scored} if not_scored is not None else {}),
                "inputs": n,
                "scored": self.n_ok,
                "failed": self.n_failed,
                "anomalous": self.n_anomalous,
                "resumed": self.n_resumed,
                "not_images": _count_suffixes(self.not_images),
                "wall_s": round(wall_s, 3),
                "images_per_s": round(self.n_ok / wall_s, 2) if wall_s > 0 else None,
                "latency_ms": {
                    stage: {"mean": round(sum(v) / len(v), 3), "p50": _percentile(v, 50), "p95": _percentile(v, 95)}
                    for stage, v in self.stages.items()
                },
                **{k: info[k] for k in ("backend", "device", "precision", "execution", "artifact", "selection")},
            }
        }
        line = json.dumps(out, ensure_ascii=False)
        if self.file is not None:
            self.file.write(line + "\n")
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
        if self.as_json:
            click.echo(line)
        else:
            s = out["summary"]
            total = s["latency_ms"].get("total", {})
            click.echo(
                (f"Interrupted, {not_scored} not scored: " if not_scored is not None else "")
                + (f"{s['resumed']} done by the earlier run, " if s["resumed"] else "")
                + f"{s['scored']}/{s['inputs']} scored, {s['anomalous']} anomalous, {s['failed']} failed; "
                f"{s['images_per_s']} images/s; total p50 {total.get('p50')} ms, p95 {total.get('p95')} ms "
                f"[{s['backend']} {s['device']} {s['precision']}]",
                err=True,
            )
        return out


@click.command("predict")
@click.argument("bundle", type=click.Path(exists=True, path_type=Path))
@click.argument("source")
@click.option("--backend", type=backend_choice(), default="auto", show_default=True)
@click.option("--device", default="CPU", show_default=True, help="CPU, GPU, NPU, AUTO, AUTO:GPU,CPU (OpenVINO); CPU, CUDA, TensorRT, CUDA,CPU (ONNX Runtime). A list falls back to the devices present.")
@click.option("--precision", type=precision_choice(), default=None, help="Artifact precision to run (default: the best the device can run; CPU fp32 > fp16 > int8).")
@click.option("--artifact", default=None, help="Artifact name (e.g. openvino-int8); overrides --precision.")
@click.option("--inference-precision", type=click.Choice(list(registry.EXECUTION_PRECISIONS), case_sensitive=False), default=None, help="OpenVINO execution precision (default: the fastest that passed at export and this device supports, else f32).")
@exact_option
@click.option("--batch-size", type=click.IntRange(min=1), default=1, show_default=True, help="Images per inference call (folders and globs).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None, help="Write predictions.jsonl (and overlays/) here.")
@click.option("--save-overlays", is_flag=True, help="Save heat-map overlays as PNG under --out/overlays, mirroring the input folders.")
@click.option("--overwrite", is_flag=True, help="Replace predictions.jsonl and overlays/ of an earlier run in --out.")
@click.option("--resume", is_flag=True, help="Finish an interrupted run in --out: inputs already scored in its predictions.jsonl are skipped (failed ones are tried again).")
@click.option("--json", "as_json", is_flag=True, help="One JSON line per input and a JSON summary on stdout.")
@click.option("--watch", is_flag=True, help="Treat a folder SOURCE as a drop folder: score new files as they arrive.")
@click.option("--max-frames", type=click.IntRange(min=1), default=None, help="Stop a video, camera or watch after N predictions.")
@click.option("--timeout", type=float, default=None, help="Stop a camera or watch after this many idle seconds.")
@remote_options
@trust_option
@friendly_errors
def predict(
    bundle: Path,
    source: str,
    backend: str,
    device: str,
    precision: str | None,
    artifact: str | None,
    inference_precision: str | None,
    exact: bool,
    batch_size: int,
    out_dir: Path | None,
    save_overlays: bool,
    overwrite: bool,
    resume: bool,
    as_json: bool,
    watch: bool,
    max_frames: int | None,
    timeout: float | None,
    url: str | None,
    model_name: str | None,
    trust: tuple[Path, ...],
) -> None:
    """Score SOURCE with BUNDLE: an image, a folder (and its subfolders), a glob ("parts/*.png"), a video or a camera index.

    Prints one line per input (JSON with --json: path, score, label, raw_score, timings_ms)
    and a summary. A file that cannot be read is reported on its own line and the run goes
    on. Exit code: 0 all inputs scored, 3 some inputs failed, 1 fatal error, 2 bad usage.

    \b
    Examples:
      edgeanomaly predict bundles/fabric parts/ --json > results.jsonl
      edgeanomaly predict bundles/fabric "line3/**/*.png" --out runs/line3 --save-overlays
      edgeanomaly predict bundles/fabric 0 --device GPU --max-frames 100
    """
    remote = check_remote(backend, url, model_name)
    if save_overlays and out_dir is None:
        raise click.BadParameter("--save-overlays needs --out DIR (nothing is written to the current directory)", param_hint="--save-overlays")
    if resume and out_dir is None:
        raise click.BadParameter("--resume needs --out DIR (the folder of the interrupted run)", param_hint="--resume")
    if resume and overwrite:
        raise click.BadParameter("--resume keeps an earlier run's results, --overwrite replaces them: pass one, not both", param_hint="--resume")
    kind, value = _resolve_source(source, watch)
    if kind == "files" and not value:
        raise click.ClickException(_no_images_message(source))
    if resume and kind != "files":
        raise click.BadParameter("--resume works with images, folders and globs (a video, camera or drop folder has no fixed list of inputs)", param_hint="--resume")
    lock = None
    if out_dir is not None:
        lock = FolderLock(out_dir, "edgeanomaly predict")  # a second run into the folder fails here
    try:
        _predict_locked(bundle, kind, value, _not_images(source, kind), backend, device, precision, artifact, inference_precision, exact,
                        batch_size, out_dir, save_overlays, overwrite, resume, as_json, max_frames, timeout, remote, trusted_keys(trust))
    finally:
        if lock is not None:
            lock.release()


def _predict_locked(bundle: Path, kind: str, value: Any, not_images: list[Path], backend: str, device: str, precision: str | None, artifact: str | None,
                    inference_precision: str | None, exact: bool, batch_size: int, out_dir: Path | None, save_overlays: bool,
                    overwrite: bool, resume: bool, as_json: bool, max_frames: int | None, timeout: float | None,
                    remote: dict[str, Any], keys: Any) -> None:
    _check_outputs(out_dir, overwrite, resume)
    root = _overlay_root(kind, value)
    done: list[dict[str, Any]] = []
    if resume:
        wanted = {str(Path(p).resolve()): str(p) for p in value}
        done = [r for r in completed_lines(out_dir / "predictions.jsonl") if str(Path(r["path"]).resolve()) in wanted]  # type: ignore[operator]
        finished = {str(Path(r["path"]).resolve()) for r in done}
        value = [p for p in value if str(Path(p).resolve()) not in finished]

    detector = load(
        bundle,
        backend=backend,
        device=device,
        precision=precision,
        artifact=artifact,
        inference_precision=inference_precision,
        exact=exact,
        # A video, camera, drop folder or many files run for long: pay the bounded backend
        # timing once (under a second) for the backend that holds up best; a few files keep
        # the registry order.
        measure_backends=kind in ("video", "camera", "watch") or (kind == "files" and len(value) >= MEASURE_FROM_FILES),
        trust=keys,
        **remote,
    )
    info = detector.info()
    if not as_json:
        click.echo(f"{detector!r}: {detector.selection}; execution {detector.execution.reason}", err=True)
    report = _Report(as_json, out_dir, save_overlays, root, done=done)
    report.not_images = not_images
    if not_images:
        shown = ", ".join(str(p) for p in not_images[:5]) + (", ..." if len(not_images) > 5 else "")
        plural = "file that is not an image" if len(not_images) == 1 else "files that are not images"
        click.echo(f"note: {len(not_images)} {plural} (not scored, not counted as failed): {shown}", err=True)
    t0 = time.perf_counter()
    stopped_by = None
    try:
        _score(detector, kind, value, batch_size, report, save_overlays, max_frames, timeout)
    except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM (friendly_errors): what was scored is kept and summed up
        stopped_by = stop
    finally:
        wall = time.perf_counter() - t0
        detector.close()
    # files: the run is cut short (and can be finished); a stream (camera, video, watched folder),
    # whose generator stops on it by itself, also when it lands between two predictions: its normal end
    interrupted = stopped_by is not None and kind == "files"
    this_run = report.n_ok - report.n_resumed + report.n_failed
    report.summary(info, wall, not_scored=len(value) - this_run if interrupted else None)
    if interrupted:
        _say_how_to_resume(out_dir)
        raise SystemExit(exit_status(stopped_by))  # the shell's code: 130 for Ctrl-C, 143 for SIGTERM
    if report.n_failed:
        raise SystemExit(EXIT_SOME_FAILED)


def _score(detector: Any, kind: str, value: Any, batch_size: int, report: _Report, save_overlays: bool,
           max_frames: int | None, timeout: float | None) -> None:
    """Score the files, the watched folder or the video/camera frames, each line to ``report``."""
    if kind == "files":
        _run_files(detector, value, batch_size, report, save_overlays)
    elif kind == "watch":

        def file_failed(failure: Any) -> None:
            report.failed("path", failure.source, failure.error)

        for path, prediction in detector.stream(value, max_frames=max_frames, timeout=timeout, on_error=file_failed):
            report.ok("path", str(path), prediction, path if save_overlays else None)
    else:

        def frames_failed(failure: Any) -> None:
            report.failed("frame", failure.source, failure.error, failure.frames)

        for frame, prediction in detector.stream(value, max_frames=max_frames, timeout=timeout, on_error=frames_failed):
            report.ok("frame", prediction.source, prediction, frame, color="BGR")


def _say_how_to_resume(out_dir: Path | None) -> None:
    """After Ctrl-C: the command that finishes the run (``--out`` keeps what was scored)."""
    if out_dir is None:
        click.echo("The results above are all this run kept; with --out DIR an interrupted run is finished by --resume.", err=True)
        return
    again = this_command_with("--resume", "predict")
    click.echo(f"The results so far are in {out_dir / 'predictions.jsonl'}. Continue with:\n  {again}", err=True)


def _run_files(detector: Any, paths: list[Path], batch_size: int, report: _Report, keep_images: bool) -> None:
    """Decode in this thread, infer pipelined; every line (result or error) in input order."""
    from collections import deque

    # (path, decode_ms, rgb) for decoded files, (path, None, error) for unreadable ones.
    queue: deque[tuple[Path, float | None, Any]] = deque()

    def images() -> Iterator[Any]:
        for path in paths:
            t0 = time.perf_counter()
            try:
                rgb = read_image(path)
                # here, not in predict_many: a refused image is one failed line, not the end of the stream
                check_image_size(rgb.shape[:2], detector.input_size, str(path))
            except ImageReadError as exc:
                queue.append((path, None, exc))
                continue
            queue.append((path, (time.perf_counter() - t0) * 1e3, rgb))
            yield rgb

    with progress(length=len(paths), label="predict", enabled=len(paths) > 1) as bar:

        def report_failures() -> None:
            while queue and queue[0][1] is None:
                path, _, error = queue.popleft()
                report.failed("path", path, error)
                bar.update(1)

        for prediction in detector.predict_many(images(), batch_size=batch_size):
            report_failures()
            path, decode_ms, rgb = queue.popleft()
            prediction.source = str(path)
            prediction.timings = {"decode": decode_ms, **prediction.timings}
            prediction.timings["total"] += decode_ms
            report.ok("path", str(path), prediction, rgb if keep_images else None)
            bar.update(1)
        report_failures()
