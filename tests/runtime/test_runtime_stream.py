"""stream(): video files, cameras, and folders that camera software writes into."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import part_image, write_rgb
from edgeanomaly.errors import DeviceUnavailableError, ImageReadError
from edgeanomaly.runtime import load, watch_folder


@pytest.fixture(scope="module")
def detector(seg_bundle: Path):
    with load(seg_bundle, backend="openvino") as det:
        yield det


def _write_video(path: Path, frames_rgb: list[np.ndarray]) -> Path:
    h, w = frames_rgb[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (w, h))
    assert writer.isOpened()
    for rgb in frames_rgb:
        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def test_video_file_frames_in_order_with_indices(detector, tmp_path: Path) -> None:
    labels = [False, True, False, False, True, True, False, True]
    frames = [part_image(96, 128, defect=(30, 40, 30, 30) if a else None, seed=i) for i, a in enumerate(labels)]
    video = _write_video(tmp_path / "line.avi", frames)
    got = list(detector.stream(video))
    assert [p.source for _, p in got] == list(range(8))
    assert [p.label for _, p in got] == labels
    frame, p = got[1]
    assert frame.shape == (96, 128, 3) and p.anomaly_map.shape == (96, 128)
    assert len(list(detector.stream(str(video), max_frames=3))) == 3
    assert [p.source for _, p in detector.stream(video, stride=3)] == [0, 3, 6]


def test_missing_camera_and_missing_source_fail_clearly(detector, tmp_path: Path) -> None:
    with pytest.raises(DeviceUnavailableError, match="Camera 9"):
        next(iter(detector.stream(9)))
    with pytest.raises(ImageReadError, match="not found"):
        next(iter(detector.stream(tmp_path / "nope.avi")))


def test_watched_folder_scores_new_complete_files_only(detector, tmp_path: Path) -> None:
    drop = tmp_path / "incoming"
    write_rgb(drop / "old.png", part_image(64, 80))  # present before watching: ignored
    names = ["a.png", "b.png", "c.png"]
    defects = [None, (10, 10, 20, 20), None]

    def camera() -> None:
        time.sleep(0.3)
        for name, defect in zip(names, defects):
            ok, data = cv2.imencode(".png", cv2.cvtColor(part_image(64, 80, defect=defect), cv2.COLOR_RGB2BGR))
            data = data.tobytes()
            with open(drop / name, "wb") as f:  # written in two parts, like a slow camera PC
                f.write(data[: len(data) // 2])
                f.flush()
                time.sleep(0.25)
                f.write(data[len(data) // 2 :])
            (drop / "notes.txt").write_text("not an image")
            time.sleep(0.05)

    thread = threading.Thread(target=camera)
    thread.start()
    try:
        got = list(detector.stream(drop, max_frames=3, timeout=10, poll_interval=0.05))
    finally:
        thread.join()
    assert [Path(p).name for p, _ in got] == names
    assert [pred.label for _, pred in got] == [False, True, False]
    assert all(pred.source == str(p) for p, pred in got)


def test_watch_folder_idle_timeout_and_existing_files(tmp_path: Path) -> None:
    write_rgb(tmp_path / "x.png", part_image(8, 8))
    t0 = time.monotonic()
    assert list(watch_folder(tmp_path, timeout=0.3, poll_interval=0.05)) == []
    assert time.monotonic() - t0 < 3
    assert [p.name for p in watch_folder(tmp_path, timeout=0.2, poll_interval=0.05, include_existing=True)] == ["x.png"]
