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
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from edgeanomaly.errors import DeviceUnavailableError, ImageReadError

if TYPE_CHECKING:
    from edgeanomaly.runtime._detector import Detector
    from edgeanomaly.runtime._prediction import Prediction

__all__ = ["FolderWatcher", "stream", "watch_folder"]

log = logging.getLogger("edgeanomaly.runtime")


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

    Stops cleanly on Ctrl-C (KeyboardInterrupt).

    >>> for path, p in det.stream("/data/line3/incoming", timeout=60):   # doctest: +SKIP
    ...     print(path.name, p.label)
    """
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"Expected max_frames >= 1, got {max_frames}")
    try:
        if _is_camera(source):
            yield from _capture(detector, int(source), max_frames, timeout, stride, camera=True)
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
                    # A camera that writes one bad file must not stop the line.
                    log.warning("skipping %s: %s", file, exc)
                    continue
                yield file, prediction
                count += 1
                if max_frames is not None and count >= max_frames:
                    return
            return
        if not path.exists():
            raise ImageReadError(f"Stream source not found (expected a video file, a folder or a camera index): {path}")
        yield from _capture(detector, str(path), max_frames, timeout, stride, camera=False)
    except KeyboardInterrupt:
        log.info("stream stopped by the user")


def _capture(
    detector: "Detector", source: int | str, max_frames: int | None, timeout: float | None, stride: int, camera: bool
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

    def frames_in() -> Iterator[np.ndarray]:
        index = -1
        emitted = 0
        last = time.monotonic()
        while max_frames is None or emitted < max_frames:
            ok, frame = cap.read()
            if not ok:
                # A video ends; a camera may just be late: retry until the idle timeout.
                if not camera or (timeout is not None and time.monotonic() - last > timeout):
                    return
                time.sleep(0.01)
                continue
            last = time.monotonic()
            index += 1
            if index % stride:
                continue
            frames.append((index, frame))
            emitted += 1
            yield frame

    try:
        # predict_many overlaps reading/decoding frame i+1 with inference of frame i.
        for prediction in detector.predict_many(frames_in(), color="BGR"):
            index, frame = frames.popleft()
            prediction.source = index
            yield frame, prediction
    finally:
        cap.release()


class FolderWatcher:
    """Yield image files as they appear in a folder, each once, when completely written.

    A file is taken when its size is non-zero and unchanged between two scans (files are
    yielded oldest first: modification time, then name). A slow writer can pause longer than
    a scan, so a consumer that fails to decode a file calls :meth:`retry`: the file is then
    offered again once stable, for up to ``settle`` seconds after its first failure.

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
        self._seen: set[str] = set() if include_existing else {e.name for e in os.scandir(self.folder) if e.is_file()}
        self._sizes: dict[str, int] = {}
        self._first_failure: dict[str, float] = {}

    def retry(self, path: str | os.PathLike[str]) -> bool:
        """Offer ``path`` again when it is stable; False once ``settle`` seconds have passed."""
        name = Path(path).name
        first = self._first_failure.setdefault(name, time.monotonic())
        if time.monotonic() - first > self.settle:
            return False
        self._seen.discard(name)
        self._sizes.pop(name, None)
        return True

    def __iter__(self) -> Iterator[Path]:
        from edgeanomaly.data import is_image_file

        last_new = time.monotonic()
        while True:
            ready: list[tuple[float, str]] = []
            for entry in os.scandir(self.folder):
                name = entry.name
                if name in self._seen or name.startswith(".") or not is_image_file(name):
                    continue
                try:
                    if not entry.is_file():
                        continue
                    st = entry.stat()
                except FileNotFoundError:  # renamed or removed between scandir and stat
                    continue
                if st.st_size > 0 and self._sizes.get(name) == st.st_size:
                    ready.append((st.st_mtime, name))
                self._sizes[name] = st.st_size
            for _, name in sorted(ready):
                self._seen.add(name)
                self._sizes.pop(name, None)
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
