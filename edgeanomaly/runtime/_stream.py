"""Continuous sources: a video file, a camera, or a folder that camera software writes into.

Line cameras usually hand images over by writing files into a folder; a file that is still
being written must not be scored (a half-written JPEG decodes as a grey-filled image that
looks anomalous). A file is therefore read only once its size has stayed the same across
two polls.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from pathlib import Path
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np

from edgeanomaly.data import is_image_file
from edgeanomaly.errors import DeviceUnavailableError, ImageReadError

if TYPE_CHECKING:
    from edgeanomaly.runtime._detector import Detector
    from edgeanomaly.runtime._prediction import Prediction

__all__ = ["FolderWatcher", "StreamError", "stream", "watch_folder"]

log = logging.getLogger("edgeanomaly.runtime")

#: Consecutive unreadable frames after which a video file counts as truncated.
_MAX_BAD_RUN = 25


@dataclass(frozen=True)
class StreamError:
    """An input of a stream that could not be scored.

    Attributes:
        source: the file (watched folder) or the first frame index (video) concerned.
        error: what went wrong (:class:`~edgeanomaly.errors.ImageReadError`).
        frames: how many inputs this covers (a truncated video reports its missing tail once).
    """

    source: Any
    error: Exception
    frames: int = 1


def _log_error(failure: StreamError) -> None:
    log.warning("not scored: %s (%d input%s): %s", failure.source, failure.frames, "s" * (failure.frames != 1), failure.error)


def _is_camera(source: Any) -> bool:
    if isinstance(source, bool):
        return False
    if isinstance(source, int):
        return True
    return isinstance(source, str) and source.strip().isdigit()


def stream(
    detector: "Detector",
    source: int | str | os.PathLike[str],
    *,
    max_frames: int | None = None,
    timeout: float | None = None,
    poll_interval: float = 0.1,
    include_existing: bool = False,
    stride: int = 1,
    on_error: Callable[[StreamError], None] | None = None,
) -> Iterator[tuple[Any, "Prediction"]]:
    """Yield ``(frame_or_path, Prediction)`` from a video file, a camera or a watched folder.

    Args:
        detector: a loaded :class:`~edgeanomaly.runtime.Detector`.
        source: a camera index (``0`` or ``"0"``), a video file, or a folder to watch.
            Video and camera frames are yielded as OpenCV gives them (BGR uint8);
            ``Prediction.source`` is the frame index. Folders yield the new file's path.
        max_frames: stop after this many predictions.
        timeout: stop after this many seconds without a new frame or file (folders and
            cameras; a video file also stops at its end).
        poll_interval: seconds between folder scans.
        include_existing: folders only: also score files present when watching starts.
        stride: video/camera only: score every ``stride``-th frame.
        on_error: called with a :class:`StreamError` for every input that could not be
            scored: an undecodable or empty file in a watched folder, an unreadable video
            frame (reading goes on past it), the missing tail of a truncated video (fewer
            frames than its container declares). Default: a warning in the log.

    Stops cleanly on Ctrl-C (KeyboardInterrupt).

    >>> for path, p in det.stream("/data/line3/incoming", timeout=60):   # doctest: +SKIP
    ...     print(path.name, p.label)
    """
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"Expected max_frames >= 1, got {max_frames}")
    try:
        report = on_error or _log_error
        if _is_camera(source):
            yield from _capture(detector, int(source), max_frames, timeout, stride, camera=True, report=report)
            return
        path = Path(source)
        if path.is_dir():
            count = 0
            watcher = FolderWatcher(path, timeout=timeout, poll_interval=poll_interval, include_existing=include_existing)
            for file in watcher:
                try:
                    prediction = detector.predict(file)
                except ImageReadError as exc:
                    if watcher.retry(file):  # probably still being written: try again when stable
                        continue
                    # A camera that writes one bad file must not stop the line; it is reported.
                    report(StreamError(file, exc))
                    continue
                yield file, prediction
                count += 1
                if max_frames is not None and count >= max_frames:
                    return
            return
        if not path.exists():
            raise ImageReadError(f"Stream source not found (expected a video file, a folder or a camera index): {path}")
        yield from _capture(detector, str(path), max_frames, timeout, stride, camera=False, report=report)
    except KeyboardInterrupt:
        log.info("stream stopped by the user")


def _capture(
    detector: "Detector",
    source: int | str,
    max_frames: int | None,
    timeout: float | None,
    stride: int,
    camera: bool,
    report: Callable[[StreamError], None],
) -> Iterator[tuple[np.ndarray, "Prediction"]]:
    import cv2

    if stride < 1:
        raise ValueError(f"Expected stride >= 1, got {stride}")
    cap = cv2.VideoCapture(source)
    if not cap.isOpened():
        cap.release()
        if camera:
            raise DeviceUnavailableError(f"Camera {source} could not be opened (is it connected and not in use?)")
        raise ImageReadError(f"Cannot open video file {source} (unsupported codec or not a video)")
    frames: deque[tuple[int, np.ndarray]] = deque()
    # What the container declares (0 when unknown, e.g. a camera or a raw stream).
    declared = 0 if camera else max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT)))

    def frames_in() -> Iterator[np.ndarray]:
        index = -1
        emitted = 0
        bad: list[int] = []  # indices of the current run of unreadable frames
        last = time.monotonic()
        while max_frames is None or emitted < max_frames:
            ok, frame = cap.read()
            if not ok:
                if not camera:
                    # A video ends at its last frame; before that, an unreadable frame is
                    # skipped (the decoder resynchronises) unless too many follow: truncation.
                    if index + 1 < declared and len(bad) < _MAX_BAD_RUN:
                        index += 1
                        bad.append(index)
                        continue
                    first = bad[0] if bad else index + 1
                    lost = sum(1 for k in range(first, max(declared, first + len(bad))) if k % stride == 0)
                    if lost:
                        report(StreamError(first, ImageReadError(
                            f"video {source} ended after frame {first - 1} (the last readable one), but its "
                            f"container declares {declared} frames: frames {first} to {declared - 1} are missing "
                            "(a truncated or damaged file)"), frames=lost))
                    return
                # A camera may just be late: retry until the idle timeout.
                if timeout is not None and time.monotonic() - last > timeout:
                    return
                time.sleep(0.01)
                continue
            for skipped in (k for k in bad if k % stride == 0):
                report(StreamError(skipped, ImageReadError(f"frame {skipped} of video {source} could not be decoded; skipped")))
            bad = []
            last = time.monotonic()
            index += 1
            if index % stride:
                continue
            frames.append((index, frame))
            emitted += 1
            yield frame

    try:
        # predict_many overlaps reading/decoding frame i+1 with inference of frame i; each
        # frame keeps every core (the latency model), as a camera gives one frame at a time.
        for prediction in detector.predict_many(frames_in(), color="BGR", throughput=False):
            index, frame = frames.popleft()
            prediction.source = index
            yield frame, prediction
    finally:
        cap.release()


class FolderWatcher:
    """Yield image files as they appear in a folder, each once, when completely written.

    A file is taken when its size is non-zero and unchanged between two scans (files are
    yielded oldest first: modification time, then name), or when it has stayed empty for
    ``settle`` seconds (so that the consumer reports it). A link whose target is missing is
    offered once it has stayed so for ``settle`` seconds (a link may be made before its target
    is written; one to an unmounted share stays broken and is reported). A slow writer can
    pause longer than a scan, so a consumer that fails to decode a file calls :meth:`retry`:
    the file is then offered again once stable, for up to ``settle`` seconds after its first
    failure.

    Args:
        folder: the drop folder (not recursive).
        timeout: stop after this many seconds without a new file (never when None).
        poll_interval: seconds between scans.
        include_existing: also yield files present when watching starts.
        settle: seconds during which an undecodable file is retried.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        timeout: float | None = None,
        poll_interval: float = 0.1,
        include_existing: bool = False,
        settle: float = 2.0,
    ) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise ImageReadError(f"Watch folder not found: {self.folder}")
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.settle = settle
        self._seen: set[str] = set() if include_existing else {
            e.name for e in os.scandir(self.folder) if e.is_file() or e.is_symlink()}
        self._sizes: dict[str, int] = {}
        self._first_failure: dict[str, float] = {}
        self._empty_since: dict[str, float] = {}
        self._broken_since: dict[str, float] = {}

    def retry(self, path: str | os.PathLike[str]) -> bool:
        """Offer ``path`` again when it is stable; False once ``settle`` seconds have passed
        (at once for a link whose target is missing: it was offered after ``settle`` seconds)."""
        if os.path.islink(path) and not os.path.exists(path):
            return False
        name = Path(path).name
        first = self._first_failure.setdefault(name, time.monotonic())
        if time.monotonic() - first > self.settle:
            return False
        self._seen.discard(name)
        self._sizes.pop(name, None)
        return True

    def __iter__(self) -> Iterator[Path]:
        last_new = time.monotonic()
        while True:
            ready: list[tuple[float, str]] = []
            for entry in os.scandir(self.folder):
                name = entry.name
                if name in self._seen or name.startswith(".") or not is_image_file(name):
                    continue
                try:
                    if not entry.is_file():
                        if entry.is_symlink() and not os.path.exists(entry.path):  # its target is missing
                            since = self._broken_since.setdefault(name, time.monotonic())
                            if time.monotonic() - since > self.settle:
                                ready.append((entry.stat(follow_symlinks=False).st_mtime, name))
                        continue
                    st = entry.stat()
                except FileNotFoundError:  # renamed or removed between scandir and stat
                    continue
                self._broken_since.pop(name, None)  # a link whose target has come
                if st.st_size > 0 and self._sizes.get(name) == st.st_size:
                    ready.append((st.st_mtime, name))
                elif st.st_size == 0:
                    # A file that stays empty is offered too (and then reported as empty), so that
                    # a camera writing 0-byte files does not go unnoticed.
                    since = self._empty_since.setdefault(name, time.monotonic())
                    if time.monotonic() - since > self.settle:
                        ready.append((st.st_mtime, name))
                self._sizes[name] = st.st_size
            for _, name in sorted(ready):
                self._seen.add(name)
                self._sizes.pop(name, None)
                self._empty_since.pop(name, None)
                self._broken_since.pop(name, None)
                last_new = time.monotonic()
                yield self.folder / name
            if self.timeout is not None and time.monotonic() - last_new > self.timeout:
                return
            time.sleep(self.poll_interval)


def watch_folder(
    folder: str | os.PathLike[str],
    *,
    timeout: float | None = None,
    poll_interval: float = 0.1,
    include_existing: bool = False,
) -> Iterator[Path]:
    """Yield image files as they appear in ``folder``, each once, when completely written.

    See :class:`FolderWatcher` (which also lets a consumer retry a file that did not decode).

    >>> for path in watch_folder("/data/incoming", timeout=30):   # doctest: +SKIP
    ...     print(path)
    """
    yield from FolderWatcher(folder, timeout=timeout, poll_interval=poll_interval, include_existing=include_existing)
