"""The inspection page served at ``/``: choose or drop an image, see verdict, score and heat map.

One self-contained HTML document (no external scripts, fonts or images), posting the file's
bytes to ``/inspect``.
"""

from __future__ import annotations

__all__ = ["PAGE"]

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>edgeanomaly inspection</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; max-width: 60rem; }
  #drop { border: 2px dashed #888; border-radius: 8px; padding: 2rem; text-align: center; }
  #drop.over { background: #eef; }
  #verdict { font-size: 1.6rem; font-weight: bold; margin: 1rem 0 0.3rem; }
  .ANOMALOUS { color: #b00; } .NORMAL { color: #070; } .error { color: #b00; }
  img { width: min(100%, 512px); margin-top: 1rem; border: 1px solid #ccc; }
</style>
</head>
<body>
<h1>edgeanomaly inspection</h1>
<p>Model: <select id="model"></select></p>
<div id="drop">Drop an image here, or <input type="file" id="file" accept="image/*"></div>
<div id="verdict"></div>
<div id="score"></div>
<img id="overlay" alt="" hidden>
<script>
const models = "__MODELS__".split(",");
const select = document.getElementById("model");
for (const m of models) { const o = document.createElement("option"); o.value = m; o.textContent = m; select.appendChild(o); }
const drop = document.getElementById("drop");
async function inspect(file) {
  const verdict = document.getElementById("verdict");
  verdict.className = ""; verdict.textContent = "scoring " + file.name + " ...";
  const r = await fetch("/inspect?model=" + encodeURIComponent(select.value), {method: "POST", body: file});
  const j = await r.json();
  if (!r.ok) { verdict.className = "error"; verdict.textContent = j.error; return; }
  verdict.className = j.verdict; verdict.textContent = j.verdict;
  document.getElementById("score").textContent =
    "score " + j.score.toFixed(3) + " (threshold 0.5), raw " + j.raw_score.toPrecision(5) + ", " + j.image_size.join(" x ") + " px";
  const img = document.getElementById("overlay"); img.src = j.overlay_png; img.hidden = false;
  document.body.dataset.done = "1";
}
document.getElementById("file").addEventListener("change", e => { if (e.target.files.length) inspect(e.target.files[0]); });
drop.addEventListener("dragover", e => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", e => { e.preventDefault(); drop.classList.remove("over"); if (e.dataTransfer.files.length) inspect(e.dataTransfer.files[0]); });
</script>
</body>
</html>
"""
