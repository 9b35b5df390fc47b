"""LaSR: a light language-aware transformer that fuses the two anchored paths into one embedding z,
and the task heads that score with z."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SEG_LANG, SEG_LR, SEG_EN = 0, 1, 2


class LaSRHead(nn.Module):
    """z = normalize( W . LayerNorm( Encoder(X)[:, 0] ) + b ), with the input token sequence

        X = [ lang_emb(lang) + seg[lang] ;
              E_lr[:, s] + seg[lr] + pos[s]   for s < S ;
              E_en[:, s] + seg[en] + pos[s]   for s < S ]          ->  [B, 1 + 2S, d]

    Encoder is an ``nn.TransformerEncoder`` (pre-norm, GELU). The slot position embeddings pos are
    shared by both paths, so slot s of the LRL path and slot s of the English path line up.

    Dropping the English path (``e_en=None`` or ``en_mask`` False for an example) removes its
    tokens from attention via ``src_key_padding_mask``; since z is read at the language token,
    which is never masked, z then depends on E_lr and lang only. In training mode each example's
    English path is also dropped with probability ``path_dropout`` (torch's global RNG), so the head
    learns to work on LRL-only input.
    """

    def __init__(
        self,
        d: int,
        n_langs: int,
        n_slots: int,
        n_layers: int = 2,
        n_heads: int = 4,
        ff_mult: int = 2,
        dropout: float = 0.1,
        path_dropout: float = 0.0,
        d_in: int | None = None,
        residual: bool = False,
        anchor_lang: bool = False,
    ):
        super().__init__()
        if not 0.0 <= path_dropout <= 1.0:
            raise ValueError(f"path_dropout must be in [0, 1], got {path_dropout}")
        self.d, self.n_langs, self.n_slots = d, n_langs, n_slots
        # Its own constructor arguments: a saved model rebuilds the head from them (config()).
        self._config = {"d_model": d, "n_langs": n_langs, "n_slots": n_slots, "n_layers": n_layers, "n_heads": n_heads,
                        "ff_mult": ff_mult, "dropout": dropout, "path_dropout": path_dropout, "d_in": d_in or d,
                        "residual": residual, "anchor_lang": anchor_lang}
        # d_in: width of the anchored inputs (and of z); the transformer runs at width d.
        self.d_in = d_in or d
        self.residual = residual
        self.in_proj = nn.Linear(self.d_in, d) if self.d_in != d else nn.Identity()
        self.path_dropout = path_dropout
        # anchor_lang: one more language entry, index n_langs, for anchor-language (English) text read
        # on the English path alone - in training (consistency terms) and at inference alike.
        self.anchor_index: int | None = n_langs if anchor_lang else None
        self.lang_emb = nn.Embedding(n_langs + int(anchor_lang), d)
        self.seg_emb = nn.Embedding(3, d)
        self.slot_emb = nn.Embedding(n_slots, d)
        layer = nn.TransformerEncoderLayer(
            d_model=d,
            nhead=n_heads,
            dim_feedforward=ff_mult * d,
            dropout=dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        # nested tensors are a fast-path detail; off so masked and unmasked runs share one code path
        self.encoder = nn.TransformerEncoder(layer, num_layers=n_layers, enable_nested_tensor=False)
        self.out_norm = nn.LayerNorm(d)
        self.out_proj = nn.Linear(d, self.d_in)
        if residual:
            # z starts as the mean of the anchored paths and learns a correction from there.
            nn.init.zeros_(self.out_proj.weight)
            nn.init.zeros_(self.out_proj.bias)

    def config(self) -> dict:
        """The constructor arguments, as saved beside the weights (``LaSRHead.from_config``)."""
        return dict(self._config)

    @classmethod
    def from_config(cls, config: dict) -> LaSRHead:
        c = dict(config)
        return cls(c.pop("d_model"), **c)

    def _path_tokens(self, e: Tensor, segment: int) -> Tensor:
        S = e.shape[1]
        if S > self.n_slots:
            raise ValueError(f"got {S} slots, head was built for n_slots={self.n_slots}")
        pos = torch.arange(S, device=e.device)
        return self.in_proj(e) + self.seg_emb.weight[segment] + self.slot_emb(pos)

    def encode(
        self,
        e_lr: Tensor | None,
        e_en: Tensor | None,
        lang: Tensor,
        lr_mask: Tensor | None = None,
        en_mask: Tensor | None = None,
    ) -> Tensor:
        """The general form: either path may be absent (None) or masked per example ([B] bool,
        False = drop that path for that example). No path dropout here. Returns z [B, d]."""
        B = lang.shape[0]
        tokens = [(self.lang_emb(lang) + self.seg_emb.weight[SEG_LANG]).unsqueeze(1)]
        keep = [torch.ones(B, 1, dtype=torch.bool, device=lang.device)]
        for e, m, seg in ((e_lr, lr_mask, SEG_LR), (e_en, en_mask, SEG_EN)):
            if e is None:
                continue
            tokens.append(self._path_tokens(e, seg))
            m = torch.ones(B, dtype=torch.bool, device=e.device) if m is None else m.bool()
            keep.append(m.unsqueeze(1).expand(B, e.shape[1]))
        x = torch.cat(tokens, dim=1)
        pad = ~torch.cat(keep, dim=1)  # True = ignore this key
        h = self.encoder(x, src_key_padding_mask=pad if pad.any() else None)
        z = self.out_proj(self.out_norm(h[:, 0]))
        if self.residual:
            z = z + self._skip(e_lr, e_en, lr_mask, en_mask, B)
        return F.normalize(z, dim=-1)

    @staticmethod
    def _skip(e_lr, e_en, lr_mask, en_mask, B: int) -> Tensor:
        """Mean of the unit-normalised, slot-averaged inputs of the paths present per example."""
        total, count = 0.0, 0.0
        for e, m in ((e_lr, lr_mask), (e_en, en_mask)):
            if e is None:
                continue
            w = torch.ones(B, 1, device=e.device) if m is None else m.float().unsqueeze(1)
            total = total + w * F.normalize(e.mean(1), dim=-1)
            count = count + w
        return total / torch.clamp(torch.as_tensor(count), min=1.0)

    def forward(
        self,
        e_lr: Tensor,
        e_en: Tensor | None,
        lang: Tensor,
        en_mask: Tensor | None = None,
    ) -> Tensor:
        """e_lr [B, S, d], e_en [B, S, d] | None, lang [B] long, en_mask [B] bool | None -> z [B, d]."""
        if e_en is not None and self.training and self.path_dropout > 0:
            B = e_en.shape[0]
            dropped = torch.rand(B, device=e_en.device) < self.path_dropout
            base = torch.ones(B, dtype=torch.bool, device=e_en.device) if en_mask is None else en_mask.bool()
            en_mask = base & ~dropped
        return self.encode(e_lr, e_en, lang, en_mask=en_mask)

    def lrl_only(self, e_lr: Tensor, lang: Tensor) -> Tensor:
        """z from the LRL path alone (inference on LRL-only input; 'drop English' ablation)."""
        return self.encode(e_lr, None, lang)

    def en_only(self, e_en: Tensor, lang: Tensor | None = None) -> Tensor:
        """z from the English path alone (LRL slots masked): anchor-language text, and the English
        side of the consistency terms. ``lang`` None = the anchor-language entry (``anchor_lang``)."""
        if lang is None:
            if self.anchor_index is None:
                raise ValueError("this LaSR head has no anchor-language entry (built without anchor_lang): "
                                 "it cannot embed anchor-language text; retrain it with this lira")
            lang = torch.full((e_en.shape[0],), self.anchor_index, dtype=torch.long, device=e_en.device)
        return self.encode(None, e_en, lang)


def choice_logits(zq: Tensor, zc: Tensor, choice_mask: Tensor, temperature: float = 0.05) -> Tensor:
    """logit[b, c] = cos(zq_b, zc_{b,c}) / temperature, -inf where choice_mask is False.

    [B, d], [B, C, d], [B, C] bool -> [B, C]. A row needs at least one valid choice, otherwise its
    softmax is NaN (as for any all-masked softmax)."""
    cos = torch.einsum("bd,bcd->bc", F.normalize(zq, dim=-1), F.normalize(zc, dim=-1))
    return (cos / temperature).masked_fill(~choice_mask.bool(), float("-inf"))
