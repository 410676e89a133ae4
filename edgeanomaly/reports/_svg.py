"""Inline SVG charts and PNG data URIs for the HTML report: NumPy and OpenCV only.

``edgeanomaly quickstart`` runs with the ``[train]`` extra, which has no matplotlib; a report
people look at must draw its figures anyway, and a self-contained file must embed them.
"""

from __future__ import annotations

import base64
import html
import math
from typing import Sequence

import numpy as np

__all__ = ["line_chart", "histogram", "png_data_uri", "COLORS"]

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
_W, _H, _L, _R, _T, _B = 320, 240, 46, 10, 26, 38  # size and margins in px


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _frame(title: str, xlabel: str, ylabel: str, xticks: Sequence[tuple[float, str]], yticks: Sequence[tuple[float, str]],
           body: str) -> str:
    """An SVG chart: axes box, ticks in plot coordinates already mapped to pixels, then ``body``."""
    parts = [f'<svg width="{_W}" height="{_H}" viewBox="0 0 {_W} {_H}" '
             f'font-family="sans-serif" font-size="10" role="img" aria-label="{_esc(title)}">',
             f'<text x="{_W / 2}" y="14" text-anchor="middle" font-size="11" font-weight="bold">{_esc(title)}</text>',
             f'<rect x="{_L}" y="{_T}" width="{_W - _L - _R}" height="{_H - _T - _B}" fill="none" stroke="#444"/>']
    for px, label in xticks:
        parts.append(f'<line x1="{px:.1f}" y1="{_H - _B}" x2="{px:.1f}" y2="{_H - _B + 4}" stroke="#444"/>'
                     f'<text x="{px:.1f}" y="{_H - _B + 14}" text-anchor="middle">{_esc(label)}</text>')
    for py, label in yticks:
        parts.append(f'<line x1="{_L - 4}" y1="{py:.1f}" x2="{_L}" y2="{py:.1f}" stroke="#444"/>'
                     f'<text x="{_L - 6}" y="{py + 3:.1f}" text-anchor="end">{_esc(label)}</text>')
    parts.append(f'<text x="{(_L + _W - _R) / 2}" y="{_H - 4}" text-anchor="middle">{_esc(xlabel)}</text>')
    parts.append(f'<text transform="translate(11 {(_T + _H - _B) / 2}) rotate(-90)" text-anchor="middle">{_esc(ylabel)}</text>')
    parts.append(body)
    parts.append("</svg>")
    return "".join(parts)


def _scale(lo: float, hi: float, p0: float, p1: float, log: bool = False):
    if log:
        lo, hi = math.log10(lo), math.log10(hi)
    span = hi - lo if hi > lo else 1.0

    def f(v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, np.float64)
        if log:
            v = np.log10(np.maximum(v, 10.0 ** lo))
        return p0 + (np.clip(v, lo, hi) - lo) / span * (p1 - p0)

    return f


def _ticks(lo: float, hi: float, log: bool) -> list[float]:
    if log:
        return [10.0 ** e for e in range(math.ceil(math.log10(lo) - 1e-9), math.floor(math.log10(hi) + 1e-9) + 1)]
    return list(np.linspace(lo, hi, 5))


def line_chart(
    series: Sequence[tuple[np.ndarray, np.ndarray, str]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    xlim: tuple[float, float] = (0.0, 1.0),
    ylim: tuple[float, float] = (0.0, 1.0),
    logx: bool = False,
    vlines: Sequence[float] = (),
    step: bool = False,
) -> str:
    """Curves ``(x, y, legend label)`` as one inline SVG; ``step`` draws right-continuous steps.

    >>> svg = line_chart([(np.array([0, 1]), np.array([0, 1]), "ROC")], title="t", xlabel="x", ylabel="y")
    >>> svg.startswith("<svg") and "polyline" in svg
    True
    """
    fx = _scale(xlim[0], xlim[1], _L, _W - _R, logx)
    fy = _scale(ylim[0], ylim[1], _H - _B, _T)
    body = []
    for i, (x, y, label) in enumerate(series):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        if step and x.size:
            x, y = np.repeat(x, 2)[1:], np.repeat(y, 2)[:-1]
        keep = np.isfinite(x) & np.isfinite(y)
        if logx:
            keep &= x > 0
        px, py = fx(x[keep]), fy(y[keep])
        if px.size > 2000:  # a report, not a data dump: thin long pixel curves
            idx = np.unique(np.linspace(0, px.size - 1, 2000).astype(int))
            px, py = px[idx], py[idx]
        color = COLORS[i % len(COLORS)] if label or len(series) > 6 else "#999"  # unlabelled: a guide (chance line)
        points = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px, py))
        body.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.4" points="{points}"><title>{_esc(label)}</title></polyline>')
        if len(series) <= 6 and label:
            body.append(f'<text x="{_W - _R - 4}" y="{_H - _B - 6 - 12 * i}" text-anchor="end" fill="{color}">{_esc(label)}</text>')
    for v in vlines:
        p = float(fx(np.array([v]))[0])
        body.append(f'<line x1="{p:.1f}" y1="{_T}" x2="{p:.1f}" y2="{_H - _B}" stroke="#888" stroke-dasharray="4 3"/>')
    xt = [(float(fx(np.array([t]))[0]), f"{t:g}") for t in _ticks(*xlim, logx)]
    yt = [(float(fy(np.array([t]))[0]), f"{t:g}") for t in _ticks(*ylim, False)]
    return _frame(title, xlabel, ylabel, xt, yt, "".join(body))


def histogram(normal: np.ndarray, anomalous: np.ndarray, threshold: float | None, *, title: str, xlabel: str, bins: int = 20) -> str:
    """Two overlaid histograms (normal blue, anomalous red) with a dashed threshold line.

    >>> "threshold" in histogram(np.array([0.1, 0.2]), np.array([0.8]), 0.5, title="t", xlabel="score")
    True
    """
    values = np.concatenate([np.asarray(normal, np.float64).ravel(), np.asarray(anomalous, np.float64).ravel()])
    values = values[np.isfinite(values)]
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    if threshold is not None and math.isfinite(threshold):
        lo, hi = min(lo, threshold), max(hi, threshold)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    counts = [np.histogram(np.asarray(v, np.float64), bins=edges)[0] for v in (normal, anomalous)]
    top = max(1, int(max(c.max(initial=0) for c in counts)))
    fx = _scale(lo, hi, _L, _W - _R)
    fy = _scale(0, top, _H - _B, _T)
    body = []
    for c, color, name in zip(counts, (COLORS[0], COLORS[1]), ("normal", "anomalous")):
        for k, n in enumerate(c):
            if n:
                x0, x1 = float(fx(np.array([edges[k]]))[0]), float(fx(np.array([edges[k + 1]]))[0])
                y = float(fy(np.array([n]))[0])
                body.append(f'<rect x="{x0:.1f}" y="{y:.1f}" width="{max(x1 - x0 - 0.5, 0.5):.1f}" height="{_H - _B - y:.1f}" '
                            f'fill="{color}" fill-opacity="0.55"><title>{name}: {n}</title></rect>')
    body.append(f'<text x="{_L + 4}" y="{_T + 12}" fill="{COLORS[0]}">normal ({np.size(normal)})</text>'
                f'<text x="{_L + 4}" y="{_T + 24}" fill="{COLORS[1]}">anomalous ({np.size(anomalous)})</text>')
    if threshold is not None and math.isfinite(threshold):
        p = float(fx(np.array([threshold]))[0])
        body.append(f'<line x1="{p:.1f}" y1="{_T}" x2="{p:.1f}" y2="{_H - _B}" stroke="#000" stroke-dasharray="4 3"/>'
                    f'<text x="{p + 3:.1f}" y="{_T + 36}">threshold</text>')
    xt = [(float(fx(np.array([t]))[0]), f"{t:.3g}") for t in np.linspace(lo, hi, 4)]
    yt = [(float(fy(np.array([t]))[0]), f"{t:.0f}") for t in np.unique(np.linspace(0, top, min(top, 4) + 1).round())]
    return _frame(title, xlabel, "images", xt, yt, "".join(body))


def png_data_uri(rgb: np.ndarray, max_side: int = 256) -> str:
    """An RGB uint8 image as a ``data:image/png;base64,...`` URI, shrunk to ``max_side``."""
    import cv2

    h, w = rgb.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        rgb = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"Expected an encodable RGB image, got shape {rgb.shape}")
    return "data:image/png;base64," + base64.b64encode(buf.tobytes()).decode("ascii")
