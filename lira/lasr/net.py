"""LiraNet: Arca's adaptors composed with the LaSR head - pooled features in, fused embedding z out.

    E_lr = A_lr(P(H_lr)),  E_en = A_en(P(H_en)),  z = LaSR([lang; E_lr; E_en])

Pure module (tensors in, tensors out); the trainer and the inference model both use it.
"""

from __future__ import annotations

from torch import Tensor, nn

from lira.arca import AnchorAdaptors
from lira.lasr.head import LaSRHead


class LiraNet(nn.Module):
    def __init__(self, adaptors: AnchorAdaptors, head: LaSRHead):
        super().__init__()
        self.adaptors = adaptors
        self.head = head

    def anchored(self, lr: Tensor, en: Tensor | None) -> tuple[Tensor, Tensor | None]:
        e_lr = self.adaptors.lr(lr)
        e_en = self.adaptors.en(en) if en is not None else None
        return e_lr, e_en

    def forward(self, lr: Tensor, en: Tensor | None, lang: Tensor, en_mask: Tensor | None = None) -> Tensor:
        """lr [B,S,H_lr], en [B,S,H_en] | None, lang [B] -> z [B,d] (unit norm)."""
        e_lr, e_en = self.anchored(lr, en)
        return self.head(e_lr, e_en, lang, en_mask=en_mask)

    @classmethod
    def from_meta(cls, meta: dict) -> LiraNet:
        """Build the (untrained) net a ``lira-model/1`` folder describes."""
        a, lz = meta["arca"], meta["lasr"]
        adaptors = AnchorAdaptors(a["in_dim_lr"], a["in_dim_en"], a["d"], shared=a["shared"], hidden=a["hidden"],
                                  dropout=a["dropout"], residual=a.get("residual", False))
        head = LaSRHead(lz.get("d_model", a["d"]), len(meta["languages"]), meta["s_feat"], n_layers=lz["n_layers"],
                        n_heads=lz["n_heads"], dropout=lz["dropout"], d_in=a["d"], residual=lz.get("residual", False))
        return cls(adaptors, head)

    def lrl_only(self, lr: Tensor, lang: Tensor) -> Tensor:
        return self.head.lrl_only(self.adaptors.lr(lr), lang)

    def en_only(self, en: Tensor, lang: Tensor) -> Tensor:
        return self.head.en_only(self.adaptors.en(en), lang)
