"""Make an executed notebook fit to commit: the same file on every run, small, and readable without a kernel.

    python .ci/clean_notebook.py notebooks/train_carvana.ipynb [...]

- Progress-bar widgets (tqdm) are dropped: saved, they read "0%|" on GitHub and in an untrusted
  notebook. Bars stay live when a person runs the notebook.
- Every other widget (the ones that teach) keeps its saved state, so its controls show, but its
  output area and its text fallback say to run the notebook: the static figure after it is what a
  reader without a kernel sees (a saved copy inside the widget would only repeat it).
- Pieces of printed text are joined, cell ids and widget model ids are renamed in order of appearance and execution timestamps
  removed, so a second run changes only what truly varies.
- PNG figures are stored losslessly in fewer bytes: a figure of at most 256 colours as a palette PNG
  of exactly those colours, any other one re-compressed. No colour is merged: in a label map, a
  colour is a class.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import sys
from pathlib import Path

import numpy as np
from PIL import Image

VIEW = "application/vnd.jupyter.widget-view+json"
STATE = "application/vnd.jupyter.widget-state+json"
PROGRESS_BAR = re.compile(r"\d+%\|")  # tqdm's text: "epoch 1 train:  40%|####      | 4/10 [...]"
MODEL_REF = re.compile(r"IPY_MODEL_([0-9a-f]{32})")
WIDGET_TEXT = "Interactive widget: run the notebook to use it (a static copy of it follows)."


def compact_png(data: str) -> str:
    """A base64 PNG stored in fewer bytes, pixel for pixel the same: a figure with at most 256 colours as a
    palette PNG of exactly its colours, any other one re-compressed; the smaller of that and the original."""
    raw = base64.b64decode(data)
    image = Image.open(io.BytesIO(raw))
    if image.mode == "P":
        return data  # already a palette image (cleaned before)
    pixels = np.asarray(image.convert("RGB"))  # (H, W, 3)
    colors, index = np.unique(pixels.reshape(-1, 3), axis=0, return_inverse=True)
    out = io.BytesIO()
    if len(colors) <= 256:  # every colour kept exactly: a label map's colours carry meaning
        indexed = Image.fromarray(index.reshape(pixels.shape[:2]).astype(np.uint8), "P")
        indexed.putpalette(colors.astype(np.uint8).ravel().tolist())
        indexed.save(out, "PNG", optimize=True)
    else:
        Image.fromarray(pixels).save(out, "PNG", optimize=True)
    return base64.b64encode(out.getvalue()).decode() if out.tell() < len(raw) else data


def is_progress_bar(output: dict) -> bool:
    text = "".join(output.get("data", {}).get("text/plain", ""))
    return VIEW in output.get("data", {}) and bool(PROGRESS_BAR.search(text))


def merge_streams(outputs: list[dict]) -> list[dict]:
    """Consecutive stdout (or stderr) pieces as one output: how the kernel split them varies by run."""
    merged: list[dict] = []
    for output in outputs:
        last = merged[-1] if merged else None
        if last and output["output_type"] == last["output_type"] == "stream" and output["name"] == last["name"]:
            text = "".join(last["text"]) + "".join(output["text"])
            last["text"] = text.splitlines(keepends=True)
        else:
            merged.append(output)
    return merged


def reachable(state: dict, roots: list[str]) -> list[str]:
    """Widget models ``roots`` refer to, directly or through their children, in first-seen order."""
    seen: list[str] = []
    todo = list(roots)
    while todo:
        model = todo.pop(0)
        if model in seen or model not in state:
            continue
        seen.append(model)
        todo.extend(MODEL_REF.findall(json.dumps(state[model])))
    return seen


def clean(notebook: dict, name: str) -> dict:
    """The cleaned notebook (``name`` seeds the stable widget ids)."""
    roots = []
    for number, cell in enumerate(notebook["cells"]):
        cell.get("metadata", {}).pop("execution", None)
        cell["id"] = hashlib.md5(f"{name}:cell {number}".encode()).hexdigest()[:8]  # jupytext draws new ones
        if cell["cell_type"] != "code":
            continue
        cell["outputs"] = merge_streams([o for o in cell["outputs"] if not is_progress_bar(o)])
        for output in cell["outputs"]:
            data = output.get("data", {})
            if VIEW in data:
                roots.append(data[VIEW]["model_id"])
                data["text/plain"] = [WIDGET_TEXT]
            if "image/png" in data:
                data["image/png"] = compact_png(data["image/png"])
    widgets = notebook["metadata"].get("widgets", {}).get(STATE)
    if widgets is None or not roots:
        notebook["metadata"].pop("widgets", None)
        return notebook
    keep = reachable(widgets["state"], roots)
    widgets["state"] = {model: widgets["state"][model] for model in keep}
    for model in widgets["state"].values():  # an Output widget's saved figure would repeat the static copy
        if model.get("model_name") == "OutputModel" and model.get("state", {}).get("outputs"):
            model["state"]["outputs"] = [{"name": "stdout", "output_type": "stream", "text": WIDGET_TEXT + "\n"}]
    text = json.dumps(notebook)
    for number, model in enumerate(dict.fromkeys(roots + keep)):
        text = text.replace(model, hashlib.md5(f"{name}:{number}".encode()).hexdigest())
    return json.loads(text)


def main(paths: list[str]) -> int:
    for path in map(Path, paths):
        before = path.stat().st_size
        notebook = clean(json.loads(path.read_text()), path.stem)
        path.write_text(json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
        print(f"{path}: {before / 1024:.0f} KB -> {path.stat().st_size / 1024:.0f} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
