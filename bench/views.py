"""Open lira's views in a real headless browser (chromium) and check that they are not blank.

* **DVC**: ``dvc plots show`` in this checkout, the page opened from disk (offline: DVC's charts
  need vega from a CDN, so the page must show lira's notice and the static PNG instead of nothing).
* **DVC offline** (``--offline-html``, needs ``vl-convert-python``): every chart of ``dvc plots show
  --json`` drawn as SVG into one self-contained page, which renders with no network.
* **MLflow** (``--mlflow-store FILE``, an ``mlruns.db``): ``mlflow ui`` on 127.0.0.1 against a copy
  of the store; the experiment page, the parent run and its Model metrics tab.

Each page is screenshotted to PNG under ``--out`` and its DOM (after scripts ran) read back; a
page is "not blank" when enough of the screenshot is ink and the DOM holds what the view is for
(images and charts, run names, metric names). Results: bench/results/views.json.

    python bench/views.py [--out DIR] [--offline-html DIR] [--mlflow-store mlruns.db] [--no-dvc]

The browser: ``$CHROME`` or the first of chromium, chromium-browser, google-chrome on PATH
(Debian: ``apt-get install chromium``).
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
ML_VIEW = "workflowType=machine_learning"  # the query parameter of MLflow 3's "Model training" view
MIN_INK = 0.01  # share of non-white pixels under which a screenshot counts as blank


def find_browser() -> str | None:
    env = os.environ.get("CHROME")
    if env:
        return env if shutil.which(env) else None
    return next((p for p in map(shutil.which, BROWSERS) if p), None)


def _browser(browser: str, url: str, *args: str, budget_ms: int = 8000, timeout: float = 240) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="lira-chrome-") as prof:
        # a private profile and no first-run UI: nothing of the user's browser is read or written
        cmd = [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
               "--disable-extensions", f"--user-data-dir={prof}", f"--virtual-time-budget={budget_ms}", *args, url]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def screenshot(browser: str, url: str, png: Path, size: str = "1400,1400", budget_ms: int = 8000) -> Path:
    png.parent.mkdir(parents=True, exist_ok=True)
    png.unlink(missing_ok=True)
    p = _browser(browser, url, f"--window-size={size}", f"--screenshot={png}", budget_ms=budget_ms)
    if not png.is_file():
        raise RuntimeError(f"{browser} wrote no screenshot of {url} (rc {p.returncode}): {p.stderr[-800:]}")
    return png


def dump_dom(browser: str, url: str, budget_ms: int = 8000) -> str:
    p = _browser(browser, url, "--dump-dom", budget_ms=budget_ms)
    if p.returncode != 0 or "<html" not in p.stdout.lower():
        raise RuntimeError(f"{browser} --dump-dom {url} failed (rc {p.returncode}): {p.stderr[-800:]}")
    return p.stdout


def ink(png: Path) -> float:
    """The share of pixels that are not (near) white: a blank page is ~0."""
    import numpy as np
    from PIL import Image

    a = np.asarray(Image.open(png).convert("L"))
    return round(float((a < 235).mean()), 4)


def visible_text(dom: str) -> str:
    dom = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", dom)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"(?s)<[^>]+>", " ", dom))).strip()


# --------------------------------------------------------------------------------------------- DVC
def _dvc(repo: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    dvc = shutil.which("dvc") or str(Path(sys.executable).parent / "dvc")
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", **(env or {})}
    p = subprocess.run([dvc, *args], cwd=repo, capture_output=True, text=True, env=env, timeout=600, check=False)
    if p.returncode != 0:
        raise RuntimeError(f"dvc {' '.join(args)} failed (rc {p.returncode}): {p.stderr[-1500:]}")
    return p


def dvc_page(browser: str, repo: Path, out: Path, env: dict[str, str] | None = None) -> dict:
    """``dvc plots show`` as DVC writes it, opened from disk (vega needs a CDN: offline it cannot load)."""
    page = out / "dvc_plots"
    shutil.rmtree(page, ignore_errors=True)
    _dvc(repo, "plots", "show", "-o", str(page), env=env)
    url = (page / "index.html").as_uri()
    png = screenshot(browser, url, out / "dvc_plots.png")
    dom = dump_dom(browser, url)
    vega_divs = len(re.findall(r"vegaEmbed\(", dom))
    drawn = len(re.findall(r'class="[^"]*vega-embed', dom))
    notice = re.search(r'id="lira-offline"[^>]*style="display: block', dom) is not None
    images = len(re.findall(r"<img\b", dom))
    return {"url": url, "screenshot": str(png), "ink": ink(png), "vega_charts": vega_divs, "vega_charts_drawn": drawn,
            "images": images, "offline_notice_shown": notice,
            # readable: every chart drawn, or (offline) the notice says why not and the static image is there
            "readable": ink(png) >= MIN_INK and (drawn == vega_divs or (notice and images >= 1))}


def offline_html(repo: Path, out_dir: Path) -> Path:
    """Every ``dvc plots show --json`` chart as inline SVG (vl-convert) plus the image plots: one page, no network."""
    import vl_convert as vlc

    data = json.loads(_dvc(repo, "plots", "show", "--json", "-o", str(out_dir / ".dvc_json")).stdout)["data"]
    parts = []
    for title, items in data.items():
        for item in items:
            if item.get("type") == "vega":
                parts.append(f"<figure>{vlc.vegalite_to_svg(item['content'])}</figure>")
            elif item.get("type") == "image":
                img = Path(item["url"])
                img = img if img.is_absolute() else (out_dir / ".dvc_json" / img)
                b64 = base64.b64encode(img.read_bytes()).decode()
                parts.append(f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,{b64}"'
                             f' style="max-width:100%"><figcaption>{html.escape(title)}</figcaption></figure>')
    shutil.rmtree(out_dir / ".dvc_json", ignore_errors=True)
    page = out_dir / "index.html"
    page.write_text("<!DOCTYPE html><html><head><meta charset='utf-8'><title>lira - DVC plots (offline)</title>"
                    "<style>body{font-family:sans-serif;margin:16px} figure{display:inline-block;margin:8px}</style>"
                    "</head><body>" + "\n".join(parts) + "</body></html>", encoding="utf-8")
    return page


def offline_page(browser: str, repo: Path, out: Path) -> dict:
    page = offline_html(repo, out / "dvc_offline")
    url = page.as_uri()
    png = screenshot(browser, url, out / "dvc_offline.png", size="1400,2600")
    dom = dump_dom(browser, url)
    svgs, imgs = len(re.findall(r"<svg\b", dom)), len(re.findall(r"<img\b", dom))
    return {"url": url, "screenshot": str(png), "ink": ink(png), "svg_charts": svgs, "images": imgs,
            "readable": ink(png) >= MIN_INK and svgs >= 1}


# ------------------------------------------------------------------------------------------ MLflow
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(base: str, path: str, body: dict) -> dict:
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def mlflow_pages(browser: str, store: Path, out: Path, startup_s: float = 240) -> dict:
    """``mlflow ui`` against a copy of ``store`` (the UI migrates and writes; the original stays as it is)."""
    work = Path(tempfile.mkdtemp(prefix="lira-mlflow-ui-"))
    db = work / "mlruns.db"
    shutil.copy2(store, db)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    mlflow = shutil.which("mlflow") or str(Path(sys.executable).parent / "mlflow")
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    log = (work / "ui.log").open("w")
    proc = subprocess.Popen([mlflow, "ui", "--backend-store-uri", f"sqlite:///{db}", "-h", "127.0.0.1", "-p", str(port)],
                            cwd=work, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        t0 = time.monotonic()
        while True:
            try:
                with urllib.request.urlopen(base + "/health", timeout=10) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() - t0 > startup_s:
                raise RuntimeError(f"mlflow ui did not come up on {base}: {(work / 'ui.log').read_text()[-1500:]}")
            time.sleep(2)
        exps = [e for e in _post(base, "/api/2.0/mlflow/experiments/search", {"max_results": 50})["experiments"]
                if e["name"] != "Default"]
        if not exps:
            raise RuntimeError(f"{store}: no experiment besides Default")
        exp = exps[0]
        runs = _post(base, "/api/2.0/mlflow/runs/search",
                     {"experiment_ids": [exp["experiment_id"]], "max_results": 100})["runs"]
        parents = [r for r in runs if not any(t["key"] == "mlflow.parentRunId" for t in r["data"].get("tags", []))]
        if not parents:
            raise RuntimeError(f"{store}: experiment {exp['name']!r} has no parent run")
        parent = parents[0]
        run_id, run_name = parent["info"]["run_id"], parent["info"]["run_name"]
        metric_keys = sorted({m["key"] for r in runs for m in r["data"].get("metrics", [])})
        kind = next((t["value"] for t in exp.get("tags", []) if t["key"] == "mlflow.experimentKind"), None)
        e = exp["experiment_id"]
        pages = {  # MLflow 3's UI opens in its GenAI mode unless the link names the workflow (see README)
            "experiment_default": f"{base}/#/experiments/{e}",
            "experiment": f"{base}/#/experiments/{e}/runs?{ML_VIEW}",
            "run": f"{base}/#/experiments/{e}/runs/{run_id}?{ML_VIEW}",
            "run_model_metrics": f"{base}/#/experiments/{e}/runs/{run_id}/model-metrics?{ML_VIEW}",
        }
        res: dict = {"experiment": exp["name"], "experiment_kind_tag": kind, "runs": len(runs),
                     "parent_run": run_name, "metric_keys": len(metric_keys), "pages": {}}
        for name, url in pages.items():
            png = screenshot(browser, url, out / f"mlflow_{name}.png", size="1600,1000", budget_ms=30000)
            text = visible_text(dump_dom(browser, url, budget_ms=30000))
            res["pages"][name] = {"url": url.replace(base, ""), "screenshot": str(png), "ink": ink(png),
                                  "shows_run_name": run_name in text,
                                  "genai_overview": "Traces" in text and "Token Usage" in text,
                                  "text_head": text[:400]}
        res["readable"] = (all(p["ink"] >= MIN_INK for p in res["pages"].values())
                           and res["pages"]["experiment"]["shows_run_name"]
                           and not res["pages"]["experiment"]["genai_overview"]
                           and res["pages"]["run"]["shows_run_name"])
        return res
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:  # uvicorn's workers can take long to stop on a loaded machine
            os.killpg(proc.pid, 9)
            proc.wait(timeout=60)
        log.close()
        shutil.rmtree(work, ignore_errors=True)


def _relative(x, out: Path):
    """The result with this machine's screenshot folder left out of every path and URL (kept: the names)."""
    if isinstance(x, dict):
        return {k: ("OUT" if k == "screenshots" else _relative(v, out)) for k, v in x.items()}
    if isinstance(x, str):
        return x.replace(out.as_uri() + "/", "").replace(str(out) + "/", "")
    return x


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=None, help="where the screenshots go (default: a new temp folder)")
    ap.add_argument("--repo", type=Path, default=C.ROOT, help="the checkout whose plots are shown")
    ap.add_argument("--offline-html", type=Path, default=None,
                    help="also write the self-contained offline page here (needs vl-convert-python)")
    ap.add_argument("--mlflow-store", type=Path, default=None, help="an mlruns.db to open in mlflow ui (copied first)")
    ap.add_argument("--no-dvc", action="store_true", help="skip the DVC pages")
    a = ap.parse_args()
    out = a.out or Path(tempfile.mkdtemp(prefix="lira-views-"))
    out.mkdir(parents=True, exist_ok=True)
    if a.offline_html is not None and a.no_dvc:
        raise SystemExit("--offline-html needs the DVC pages (drop --no-dvc)")
    browser = find_browser()
    if browser is None:
        if a.offline_html is not None:  # the page itself needs no browser
            print(offline_html(a.repo, a.offline_html))
            return
        raise SystemExit(f"no headless browser: set $CHROME or install one of {', '.join(BROWSERS)}")
    version = subprocess.run([browser, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    result: dict = {"browser": version, "screenshots": str(out)}
    if not a.no_dvc:
        result["dvc_plots_show"] = dvc_page(browser, a.repo, out)
        if a.offline_html is not None:
            res = offline_page(browser, a.repo, out)
            shutil.copytree(out / "dvc_offline", a.offline_html, dirs_exist_ok=True)
            result["dvc_offline_html"] = res
    if a.mlflow_store is not None:
        if not a.mlflow_store.is_file():
            raise SystemExit(f"--mlflow-store {a.mlflow_store}: no such file")
        result["mlflow_ui"] = mlflow_pages(browser, a.mlflow_store, out)
    print(json.dumps(result, indent=1, ensure_ascii=False))
    print(C.write_result("views", _relative(result, out)))
    bad = [k for k, v in result.items() if isinstance(v, dict) and not v.get("readable")]
    if bad:
        raise SystemExit(f"not readable: {', '.join(bad)} (screenshots in {out})")


if __name__ == "__main__":
    main()
